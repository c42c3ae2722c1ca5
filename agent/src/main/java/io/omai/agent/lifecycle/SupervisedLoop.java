package io.omai.agent.lifecycle;

import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A pass run every period on a thread of its own that nothing a pass throws can end: a pass that throws (an
 * {@link Error} such as the {@code InternalError} of a fault in a truncated mapping included) is logged as
 * {@code event=loop_pass_failed} and the next pass runs on time. Records when the last pass completed, so
 * {@code /healthz} can tell a loop that misses its deadline ({@link #problem}).
 */
public final class SupervisedLoop implements LoopState, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SupervisedLoop.class);

    private final String name;
    private final Runnable pass;
    private final long deadlineNanos;
    private final LongSupplier nanoClock;
    private final ScheduledExecutorService executor;
    private volatile long lastCompletedAt;
    private volatile long passes;
    private volatile long failures;
    private volatile String lastFailure = "";
    private volatile boolean closed;

    private SupervisedLoop(String name, Runnable pass, Duration deadline, LongSupplier nanoClock) {
        this.name = name;
        this.pass = pass;
        this.deadlineNanos = deadline.toNanos();
        this.nanoClock = nanoClock;
        this.lastCompletedAt = nanoClock.getAsLong(); // the first pass is due within the deadline of the start
        this.executor = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("omai-" + name).daemon().factory());
    }

    /**
     * Starts running {@code pass} every {@code period} (fixed delay: a slow pass delays the next, never stacks).
     *
     * @param deadline how long the loop may go without a completed pass before {@code /healthz} fails
     */
    public static SupervisedLoop start(String name, Duration period, Duration deadline, Runnable pass) {
        return start(name, Duration.ZERO, period, deadline, pass, System::nanoTime);
    }

    /** As {@link #start(String, Duration, Duration, Runnable)}, the first pass after {@code initialDelay}. */
    public static SupervisedLoop start(
            String name, Duration initialDelay, Duration period, Duration deadline, Runnable pass) {
        return start(name, initialDelay, period, deadline, pass, System::nanoTime);
    }

    static SupervisedLoop start(
            String name,
            Duration initialDelay,
            Duration period,
            Duration deadline,
            Runnable pass,
            LongSupplier nanoClock) {
        Loops.requirePositive(name, deadline);
        if (period.isNegative() || period.isZero()) {
            throw new IllegalArgumentException("period " + period + " of loop " + name + " must be positive");
        }
        SupervisedLoop loop = new SupervisedLoop(name, Objects.requireNonNull(pass, "pass"), deadline, nanoClock);
        var _ = loop.executor.scheduleWithFixedDelay(
                loop::runPass, initialDelay.toNanos(), period.toNanos(), TimeUnit.NANOSECONDS);
        return loop;
    }

    /** One pass, guarded; also what the schedule runs. */
    // passes and failures have one writer, the loop's single thread; volatile only publishes them to readers
    @SuppressWarnings("NonAtomicVolatileUpdate")
    void runPass() {
        try {
            pass.run();
            lastCompletedAt = nanoClock.getAsLong();
            passes++;
        } catch (Throwable e) {
            failures++;
            String text = e.toString();
            // the first failure of a kind with its stack, repeats in one line: a broken loop must not flood logs
            if (!text.equals(lastFailure)) {
                log.error("event=loop_pass_failed loop={} error=\"{}\" failures={}", name, text, failures, e);
            } else {
                log.warn("event=loop_pass_failed loop={} error=\"{}\" failures={}", name, text, failures);
            }
            lastFailure = text;
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long lastPassNanos() {
        return lastCompletedAt;
    }

    /** Completed passes so far. */
    public long passes() {
        return passes;
    }

    /** Passes that threw so far. */
    public long failures() {
        return failures;
    }

    @Override
    public Optional<String> problem(long now) {
        if (closed) {
            return Optional.empty(); // stopped on purpose (agent shutting down)
        }
        if (executor.isShutdown()) {
            return Optional.of("stopped");
        }
        long idle = now - lastCompletedAt;
        if (idle < deadlineNanos) {
            return Optional.empty();
        }
        return Optional.of("no completed pass for " + idle / 1_000_000 + " ms (deadline " + deadlineNanos / 1_000_000
                + " ms; " + failures + " failed passes" + (lastFailure.isEmpty() ? "" : ", last: " + lastFailure)
                + ")");
    }

    @Override
    public void close() {
        closed = true;
        executor.shutdownNow();
        try {
            executor.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
