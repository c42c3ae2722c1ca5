package io.omai.agent.ledger;

import io.omai.agent.lifecycle.LoopThread;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.DeviceQuota;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Allocation directories for one-GPU shares, created ahead of time. Creating a control and a usage file is
 * durable (each is synced before it is renamed into place) and takes milliseconds; Allocate instead renames a
 * spare into place and writes the real limits into its control file as one seqlocked update. A spare's control
 * file grants nothing (memory limit 0) until then, and no container can see it. When no spare is ready the
 * caller creates the files directly.
 */
final class SpareAllocationFiles implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SpareAllocationFiles.class);
    private static final AllocationSpec PLACEHOLDER = new AllocationSpec(
            "spare (unassigned)",
            List.of(new DeviceQuota("GPU-unassigned", 0, 0, 1, ComputeMode.HARD_CAP)),
            true,
            100_000);

    private final Path directory;
    private final int target;
    /** A spare directory with its files still mapped, so claiming it needs no open. */
    private record Spare(Path directory, AllocationFiles files) {}

    private final ConcurrentLinkedQueue<Spare> ready = new ConcurrentLinkedQueue<>();
    private final Semaphore wanted = new Semaphore(0);
    private final AtomicLong sequence = new AtomicLong();
    private volatile boolean running = true;
    private final LoopThread filler;

    /** Keeps {@code target} spares in {@code directory} (emptied first: it is the agent's own). */
    SpareAllocationFiles(Path directory, int target) throws IOException {
        this.directory = directory;
        this.target = target;
        Files.createDirectories(directory);
        try (DirectoryStream<Path> leftovers = Files.newDirectoryStream(directory)) {
            for (Path leftover : leftovers) {
                DiscardedDirectories.delete(leftover, 0); // links removed as links, never followed
            }
        }
        wanted.release(target);
        this.filler = LoopThread.start(
                "spare-allocation-files", Thread.ofVirtual().name("spare-allocation-files"), this::fill);
    }

    private void fill() {
        while (running) {
            try {
                wanted.acquire();
            } catch (InterruptedException e) {
                return;
            }
            if (!running) {
                return;
            }
            Path spare = directory.resolve("spare-" + sequence.incrementAndGet());
            try {
                AllocationFiles files = AllocationFiles.create(spare, PLACEHOLDER);
                files.control().heartbeat();
                ready.add(new Spare(spare, files));
            } catch (IOException | RuntimeException e) {
                log.warn("event=spare_files_failed dir={}", spare, e);
                try {
                    Thread.sleep(1_000);
                } catch (InterruptedException interrupted) {
                    return;
                }
                wanted.release();
            }
        }
    }

    /**
     * Moves a spare to {@code target} and writes {@code spec} (one device) into its control file.
     *
     * @return false when no spare was ready (nothing changed)
     */
    boolean claim(Path targetDirectory, AllocationSpec spec) throws IOException {
        if (spec.devices().size() != 1) {
            return false;
        }
        Spare spare = ready.poll();
        if (spare == null) {
            return false;
        }
        wanted.release();
        AllocationFiles files = spare.files();
        try {
            // The mapping follows the file through the rename: same inode.
            Files.move(spare.directory(), targetDirectory, StandardCopyOption.ATOMIC_MOVE);
            files.control().update(spec);
            files.control().heartbeat();
        } catch (IOException | RuntimeException e) {
            files.close();
            DiscardedDirectories.deleteQuietly(spare.directory());
            throw e;
        }
        // Unmapping a shared arena waits for every thread to acknowledge; not on the request path.
        Thread.ofVirtual().name("spare-unmap").start(files::close);
        return true;
    }

    /** Spares ready now. */
    int ready() {
        return ready.size();
    }

    int target() {
        return target;
    }

    @Override
    public void close() {
        running = false;
        filler.close();
        for (Spare spare = ready.poll(); spare != null; spare = ready.poll()) {
            spare.files().close();
        }
    }
}
