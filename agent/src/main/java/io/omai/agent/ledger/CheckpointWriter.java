package io.omai.agent.ledger;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.lifecycle.LoopThread;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes the ledger's checkpoint off the request path. Allocate answers kubelet without waiting for two fsyncs
 * (several milliseconds on a real disk); the newest state is written as soon as the previous write finishes, so
 * bursts coalesce into one write. Losing the last changes in a crash is repaired at the next start: what the
 * checkpoint lacks but containers hold is adopted from kubelet's PodResources, what it has but nobody holds is
 * released. A failed write is logged and retried; the in-memory ledger stays authoritative meanwhile.
 */
final class CheckpointWriter implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CheckpointWriter.class);
    private static final Duration RETRY = Duration.ofSeconds(1);

    private final LedgerCheckpoint checkpoint;
    private final Supplier<List<Allocation>> alsoKept;
    private final Object lock = new Object();

    @GuardedBy("lock")
    private List<Allocation> pending;
    // versions submitted / written
    @GuardedBy("lock")
    private long submitted;

    @GuardedBy("lock")
    private long written;

    private boolean closed;
    private final LoopThread thread;

    /**
     * @param alsoKept allocations the ledger keeps but does not serve (their GPU is missing), written with every
     *     checkpoint; read in {@link #submit}, under the caller's (the ledger's) lock
     */
    CheckpointWriter(LedgerCheckpoint checkpoint, Supplier<List<Allocation>> alsoKept) {
        this.checkpoint = checkpoint;
        this.alsoKept = alsoKept;
        // not interrupted at close: close() flushes first and then lets the writer see closed
        this.thread = LoopThread.start(
                "ledger-checkpoint", Thread.ofVirtual().name("ledger-checkpoint"), LoopThread.Stop.AWAIT, this::run);
    }

    /** Schedules {@code snapshot} as the next checkpoint (replacing any not yet written). */
    void submit(List<Allocation> snapshot) {
        List<Allocation> kept = alsoKept.get();
        List<Allocation> all = new ArrayList<>(snapshot.size() + kept.size());
        all.addAll(snapshot);
        all.addAll(kept);
        synchronized (lock) {
            pending = List.copyOf(all);
            submitted++;
            lock.notifyAll();
        }
    }

    /** Waits until everything submitted so far is on disk (or {@code timeout} passes); true when it is. */
    boolean flush(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (lock) {
            long target = submitted;
            while (written < target) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                lock.wait(Math.max(1, left / 1_000_000));
            }
            return true;
        }
    }

    private void run() {
        while (true) {
            List<Allocation> snapshot;
            long version;
            synchronized (lock) {
                while (pending == null && !closed) {
                    try {
                        lock.wait();
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                if (pending == null) {
                    return; // closed and nothing left to write
                }
                snapshot = pending;
                version = submitted;
                pending = null;
            }
            try {
                checkpoint.write(snapshot);
                synchronized (lock) {
                    written = Math.max(written, version);
                    lock.notifyAll();
                }
            } catch (IOException | RuntimeException e) {
                log.error(
                        "event=checkpoint_write_failed file={} retry_in_ms={} error=\"{}\"",
                        checkpoint.file(),
                        RETRY.toMillis(),
                        e.toString());
                synchronized (lock) {
                    if (pending == null) {
                        pending = snapshot; // nothing newer: retry this one
                    }
                    if (closed) {
                        return;
                    }
                }
                try {
                    Thread.sleep(RETRY);
                } catch (InterruptedException interrupted) {
                    return;
                }
            }
        }
    }

    /** Writes what is pending, then stops. */
    @Override
    public void close() {
        try {
            flush(Duration.ofSeconds(10));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        synchronized (lock) {
            closed = true;
            lock.notifyAll();
        }
        thread.close();
    }
}
