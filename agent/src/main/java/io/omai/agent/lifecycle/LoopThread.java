package io.omai.agent.lifecycle;

import java.time.Duration;

/**
 * A loop that owns a thread until it is closed, for loops that block (an NVML event wait, a WatchService, a wake-up
 * semaphore) and so do not fit a {@link SupervisedLoop}'s schedule. The body runs at once and, should it throw,
 * again after a pause ({@link Loops#restarting}); {@link #close} ends it: the flag the restart checks is cleared,
 * the thread interrupted (which ends a sleep or an interruptible wait; {@link Stop#INTERRUPT}) and waited for up to
 * {@value #JOIN_SECONDS} s. The body itself watches its owner's own stop signal ({@code while (running)}), which
 * the owner clears before closing.
 */
public final class LoopThread implements AutoCloseable {
    static final int JOIN_SECONDS = 5;

    /** How {@link #close} ends the body. */
    public enum Stop {
        /** Interrupt the thread: the body sleeps or waits interruptibly. */
        INTERRUPT,
        /**
         * Only wait: the body's wait is bounded and ends it soon after the owner's flag clears, and an interrupt
         * would read as a failure of that wait (the health monitor would publish every GPU Unhealthy at a stop).
         */
        AWAIT
    }

    private final Thread thread;
    private final Stop stop;
    private volatile boolean running = true;

    private LoopThread(String name, Thread.Builder builder, Stop stop, Runnable body) {
        this.thread = builder.unstarted(Loops.restarting(name, body, () -> running));
        this.stop = stop;
    }

    /**
     * Starts {@code body} on a thread {@code builder} makes (it names the thread; platform where the body blocks
     * in native code, which would pin a virtual thread).
     *
     * @param name the loop's name in {@code event=loop_failed} lines
     */
    public static LoopThread start(String name, Thread.Builder builder, Runnable body) {
        return start(name, builder, Stop.INTERRUPT, body);
    }

    /** As {@link #start(String, Thread.Builder, Runnable)}, ended at close as {@code stop} says. */
    public static LoopThread start(String name, Thread.Builder builder, Stop stop, Runnable body) {
        LoopThread loop = new LoopThread(name, builder, stop, body);
        loop.thread.start();
        return loop;
    }

    /** Whether the thread is still running (the body has not returned, or has not been stopped). */
    public boolean alive() {
        return thread.isAlive();
    }

    /** Closes {@code loop} unless it is null (its owner was never started). */
    public static void closeIfStarted(LoopThread loop) {
        if (loop != null) {
            loop.close();
        }
    }

    @Override
    public void close() {
        close(Duration.ofSeconds(JOIN_SECONDS));
    }

    /** As {@link #close()}, waiting up to {@code wait} for the body to end (one that drains a queue first). */
    public void close(Duration wait) {
        running = false;
        if (stop == Stop.INTERRUPT) {
            thread.interrupt();
        }
        if (Thread.currentThread() == thread) {
            return; // closed from its own body: it ends when the body returns
        }
        try {
            thread.join(wait);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
