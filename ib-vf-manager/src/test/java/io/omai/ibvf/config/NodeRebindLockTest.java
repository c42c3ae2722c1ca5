package io.omai.ibvf.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.error.VfNotReadyException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NodeRebindLockTest {

    @TempDir
    Path state;

    // Thread.yield inside the critical section widens the window for another thread to enter it, were it able to
    @SuppressWarnings("ThreadPriorityCheck")
    @Test
    void rebindsOnDifferentThreads_neverOverlap() throws Exception {
        NodeRebindLock lock = new NodeRebindLock(state.resolve("rebind.lock"));
        AtomicInteger inside = new AtomicInteger();
        AtomicInteger maxInside = new AtomicInteger();
        CountDownLatch start = new CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            threads.add(Thread.ofPlatform().start(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                for (int i = 0; i < 25; i++) {
                    lock.runExclusively(() -> {
                        maxInside.accumulateAndGet(inside.incrementAndGet(), Math::max);
                        Thread.yield();
                        inside.decrementAndGet();
                    });
                }
            }));
        }
        start.countDown();
        for (Thread thread : threads) {
            thread.join();
        }

        assertThat(maxInside).hasValue(1);
    }

    @Test
    void boundedWait_checksExactlyTheConfiguredNumberOfTimes() {
        AtomicInteger checks = new AtomicInteger();
        BoundedWait wait = new BoundedWait(new ReadinessPolicy(3, Duration.ofSeconds(1)), duration -> {});

        assertThatThrownBy(() -> wait.until("pf x", () -> {
                    checks.incrementAndGet();
                    return Optional.of("virtfn0 is missing");
                }))
                .isInstanceOf(VfNotReadyException.class)
                .hasMessageContaining("pf x")
                .hasMessageContaining("virtfn0 is missing")
                .hasMessageContaining("PT2S");
        assertThat(checks).hasValue(3);
    }
}
