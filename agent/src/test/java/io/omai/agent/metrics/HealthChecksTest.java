package io.omai.agent.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class HealthChecksTest {
    private final MetricsFixtures.Nanos nanos = new MetricsFixtures.Nanos();

    @Test
    void aProgressCheckFailsOnceTheLoopHasNotMovedForTheLimit() {
        AtomicLong ticks = new AtomicLong();
        HealthCheck check = HealthChecks.progress(ticks::get, Duration.ofSeconds(5), nanos::get);
        assertThat(check.problem()).isEmpty();

        nanos.advanceSeconds(4);
        assertThat(check.problem()).as("4 s without a tick is within the limit").isEmpty();
        nanos.advanceSeconds(2);
        assertThat(check.problem()).hasValue("no iteration for 6000 ms (at 0; limit 5000 ms)");

        ticks.incrementAndGet();
        assertThat(check.problem()).as("it moved again").isEmpty();
        nanos.advanceSeconds(3);
        assertThat(check.problem()).isEmpty();
    }

    @Test
    void everyFailingCheckIsNamedOnOneLineAndABrokenCheckCountsAsFailing() {
        HealthChecks health = new HealthChecks();
        health.addLiveness("gpu-health", () -> Optional.of("stuck\nin NVML"));
        health.addLiveness("ok", Optional::empty);
        health.addLiveness("broken", () -> {
            throw new IllegalStateException("boom");
        });
        assertThat(health.livenessProblem())
                .hasValue("gpu-health: stuck in NVML; broken: check failed: java.lang.IllegalStateException: boom");
    }

    @Test
    void badArgumentsAreRefused() {
        assertThatThrownBy(() -> new HealthChecks().addReadiness(" ", Optional::empty))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("needs a name");
        assertThatThrownBy(() -> HealthChecks.progress(() -> 0, Duration.ZERO, nanos::get))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("must be positive");
    }
}
