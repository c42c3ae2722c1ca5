package io.omai.agent.schedapi;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.tenancy.MutableClock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class CachedCallerReviewTest {
    private final MutableClock clock = new MutableClock(Instant.parse("2026-12-06T07:00:00Z"));
    private final List<String> asked = new ArrayList<>();

    private final CallerReview table = token -> {
        asked.add(token);
        return token.startsWith("good")
                ? new CallerReview.Verdict.Authenticated("user-" + token, Set.of())
                : new CallerReview.Verdict.Rejected("unknown token");
    };

    @Test
    void remembersVerdictsForTheTtlAndForgetsTheLeastRecentlyUsedBeyondCapacity() {
        var cache = new CachedCallerReview(table, Duration.ofSeconds(10), 2, clock);

        cache.review("good-1");
        cache.review("good-1");
        cache.review("bad");
        cache.review("bad");
        assertThat(asked).containsExactly("good-1", "bad");

        cache.review("good-2"); // a third token: good-1 was used least recently and goes
        cache.review("good-1");
        assertThat(asked).containsExactly("good-1", "bad", "good-2", "good-1");
        assertThat(cache.size()).isEqualTo(2);

        clock.advance(Duration.ofSeconds(11));
        cache.review("good-1");
        assertThat(asked).hasSize(5);
        assertThat(cache.reviews()).isEqualTo(5);
    }

    @Test
    void neverRemembersAFailureToReview() {
        int[] calls = {0};
        var cache = new CachedCallerReview(
                token -> {
                    calls[0]++;
                    throw new CallerReview.Unavailable("API server down", null);
                },
                Duration.ofSeconds(10),
                8,
                clock);

        assertThatThrownBy(() -> cache.review("good-1")).isInstanceOf(CallerReview.Unavailable.class);
        assertThatThrownBy(() -> cache.review("good-1")).isInstanceOf(CallerReview.Unavailable.class);
        assertThat(calls[0]).isEqualTo(2);
        assertThat(cache.size()).isZero();
    }

    @Test
    void refusesANonsenseTtlOrCapacity() {
        assertThatThrownBy(() -> new CachedCallerReview(table, Duration.ZERO, 8, clock))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("positive TTL");
        assertThatThrownBy(() -> new CachedCallerReview(table, Duration.ofSeconds(1), 0, clock))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
