package io.omai.agent.lifecycle;

import java.util.function.Supplier;

/**
 * The one supervised loop a component runs: started at most once at a time, and stopped by {@link #close}, which
 * may come before any start and may come twice. Owners delegate their own {@code start}/{@code close} here.
 */
public final class LoopSlot implements AutoCloseable {
    private SupervisedLoop loop; // null while not running

    /** Whether a loop has been started and not closed. */
    public synchronized boolean running() {
        return loop != null;
    }

    /** The running loop, or the one {@code start} starts now when none runs. */
    public synchronized SupervisedLoop startIfIdle(Supplier<SupervisedLoop> start) {
        if (loop == null) {
            loop = start.get();
        }
        return loop;
    }

    @Override
    public void close() {
        SupervisedLoop running;
        synchronized (this) {
            running = loop;
            loop = null;
        }
        if (running != null) {
            running.close(); // outside the lock: it waits for a pass in progress
        }
    }
}
