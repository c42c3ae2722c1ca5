package io.omai.agent.lifecycle;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class SupervisedLoopTest {
    private final AtomicLong clock = new AtomicLong(1_000_000_000L);

    @Test
    void aPassThatThrowsAnErrorDoesNotEndTheLoop() {
        AtomicInteger calls = new AtomicInteger();
        // The InternalError a fault in a truncated mapping raises: before, it escaped the loops' catch of
        // RuntimeException and the scheduled executor silently stopped running them.
        try (SupervisedLoop loop = SupervisedLoop.start("test", Duration.ofMillis(1), Duration.ofSeconds(30), () -> {
            if (calls.incrementAndGet() % 2 == 1) {
                throw new InternalError("a fault occurred in an unsafe memory access");
            }
        })) {
            await().atMost(Duration.ofSeconds(20)).until(() -> loop.passes() >= 3 && loop.failures() >= 3);
            assertThat(loop.problem(System.nanoTime())).isEmpty();
        }
    }

    @Test
    void aLoopThatCompletesNoPassWithinItsDeadlineIsAProblemNamingItsLastFailure() {
        Loops loops = new Loops(clock::get);
        SupervisedLoop loop = loops.add(SupervisedLoop.start(
                "reaper",
                Duration.ZERO,
                Duration.ofHours(1),
                Duration.ofSeconds(10),
                () -> {
                    throw new IllegalStateException("usage file gone");
                },
                clock::get));
        try {
            loop.runPass();
            assertThat(loops.problem()).isEmpty();
            clock.addAndGet(Duration.ofSeconds(11).toNanos());
            assertThat(loops.problem())
                    .hasValueSatisfying(p -> assertThat(p)
                            .startsWith("reaper: no completed pass for 11000 ms")
                            .contains("deadline 10000 ms")
                            .contains("usage file gone"));
        } finally {
            loop.close();
        }
        assertThat(loops.problem()).as("closed on purpose").isEmpty();
    }

    @Test
    void aWatchedLoopWhoseCountStopsMissesItsDeadline() {
        Loops loops = new Loops(clock::get);
        AtomicLong passes = new AtomicLong();
        loops.watch("gpu-health", passes::get, Duration.ofSeconds(5));
        clock.addAndGet(Duration.ofSeconds(4).toNanos());
        passes.incrementAndGet();
        assertThat(loops.problem()).isEmpty();
        clock.addAndGet(Duration.ofSeconds(6).toNanos());
        assertThat(loops.problem())
                .hasValueSatisfying(p -> assertThat(p).startsWith("gpu-health: no pass for 6000 ms"));
        assertThat(loops.all()).extracting(LoopState::name).containsExactly("gpu-health");
    }

    @Test
    void lastPassAgesAreTheTimeSinceEachLoopLastMoved() {
        Loops loops = new Loops(clock::get);
        AtomicLong passes = new AtomicLong();
        loops.watch("gpu-health", passes::get, Duration.ofSeconds(30));
        clock.addAndGet(Duration.ofSeconds(3).toNanos());
        assertThat(loops.lastPassAges()).containsEntry("gpu-health", 3.0);
        passes.incrementAndGet();
        assertThat(loops.lastPassAges()).as("a pass seen now").containsEntry("gpu-health", 0.0);
        clock.addAndGet(Duration.ofSeconds(7).toNanos());
        assertThat(loops.lastPassAges()).containsEntry("gpu-health", 7.0);
    }

    @Test
    void aRestartingBodyRunsAgainAfterItThrows() throws InterruptedException {
        AtomicInteger runs = new AtomicInteger();
        CountDownLatch second = new CountDownLatch(2);
        Thread t = Thread.ofVirtual()
                .start(Loops.restarting(
                        "registration",
                        () -> {
                            runs.incrementAndGet();
                            second.countDown();
                            if (runs.get() == 1) {
                                throw new StackOverflowError("first run");
                            }
                        },
                        () -> true));
        second.await();
        t.join(Duration.ofSeconds(10));
        assertThat(runs).hasValue(2);
        assertThat(t.isAlive()).as("a body that returns ends the loop").isFalse();
    }

    @Test
    void oneSubjectsFaultIsIsolatedAndLoggedOnce() {
        IsolatedFailures failures = new IsolatedFailures("compute-control");
        AtomicInteger ran = new AtomicInteger();
        for (String subject : List.of("a", "b", "c")) {
            failures.run(subject, () -> {
                if (subject.equals("b")) {
                    throw new InternalError("a fault occurred in an unsafe memory access");
                }
                ran.incrementAndGet();
            });
        }
        assertThat(ran).hasValue(2);
        assertThat(failures.failing()).containsOnlyKeys("b");
        assertThat(failures.run("b", () -> {})).isTrue();
        assertThat(failures.failing()).isEmpty();
    }
}
