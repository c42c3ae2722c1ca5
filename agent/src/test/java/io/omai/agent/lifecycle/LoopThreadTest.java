package io.omai.agent.lifecycle;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class LoopThreadTest {
    @Test
    void closeEndsABodyBlockedInASleepAndWaitsForIt() throws InterruptedException {
        CountDownLatch sleeping = new CountDownLatch(1);
        LoopThread loop = LoopThread.start("sleeper", Thread.ofVirtual().name("test-sleeper"), () -> {
            sleeping.countDown();
            try {
                Thread.sleep(60_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        assertThat(sleeping.await(10, TimeUnit.SECONDS)).isTrue();

        loop.close();

        assertThat(loop.alive()).as("close returns once the thread has ended").isFalse();
    }

    @Test
    void aBodyThatThrowsRunsAgainUntilClosed() throws InterruptedException {
        AtomicInteger runs = new AtomicInteger();
        CountDownLatch ranTwice = new CountDownLatch(2);
        LoopThread loop =
                LoopThread.start("crasher", Thread.ofPlatform().daemon().name("test-crasher"), () -> {
                    runs.incrementAndGet();
                    ranTwice.countDown();
                    throw new IllegalStateException("boom");
                });
        assertThat(ranTwice.await(10, TimeUnit.SECONDS))
                .as("restarted after the failure")
                .isTrue();

        loop.close();
        int afterClose = runs.get();
        assertThat(loop.alive()).isFalse();
        assertThat(runs.get()).isEqualTo(afterClose);
    }

    @Test
    void awaitLeavesTheBodyUninterruptedAndWaitsForItToNotice() throws InterruptedException {
        java.util.concurrent.atomic.AtomicBoolean stopping = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicBoolean interrupted = new java.util.concurrent.atomic.AtomicBoolean();
        CountDownLatch started = new CountDownLatch(1);
        LoopThread loop = LoopThread.start(
                "waiter", Thread.ofPlatform().daemon().name("test-waiter"), LoopThread.Stop.AWAIT, () -> {
                    started.countDown();
                    while (!stopping.get()) {
                        try {
                            Thread.sleep(20); // a bounded wait, as NVML's event wait
                        } catch (InterruptedException e) {
                            interrupted.set(true);
                            return;
                        }
                    }
                });
        assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();

        stopping.set(true);
        loop.close();

        assertThat(loop.alive()).isFalse();
        assertThat(interrupted).isFalse();
    }
}
