package io.omai.agent.ledger;

import io.omai.agent.lifecycle.LoopThread;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Removes released allocations' directories off the request path. Unlinking files can take milliseconds (block
 * freeing, online discard); a rename into a trash directory on the same file system is atomic and immediate, so
 * the allocation is gone from where containers and the agent look at once, and a background thread deletes it.
 * Leftovers from a previous run are deleted at start.
 *
 * <p>Deleting never follows a symbolic link: a link is removed as a link, so nothing outside the state directory
 * is ever deleted, whatever was planted in it.
 */
final class DiscardedDirectories implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DiscardedDirectories.class);
    private static final Path STOP = Path.of("");
    /** An allocation directory holds two files; anything deeper than this is not ours and is left alone. */
    private static final int MAX_DEPTH = 4;

    private final Path trash;
    private final LinkedBlockingQueue<Path> queue = new LinkedBlockingQueue<>();
    private final AtomicLong sequence = new AtomicLong();
    private final LoopThread remover;

    DiscardedDirectories(Path trash) throws IOException {
        this.trash = trash;
        Files.createDirectories(trash);
        try (DirectoryStream<Path> leftovers = Files.newDirectoryStream(trash)) {
            for (Path leftover : leftovers) {
                queue.add(leftover);
            }
        }
        this.remover = LoopThread.start(
                "discarded-allocation-remover",
                Thread.ofVirtual().name("discarded-allocation-remover"),
                LoopThread.Stop.AWAIT,
                this::run);
    }

    /** Moves {@code directory} (if it exists) out of the way and schedules its deletion. */
    void discard(Path directory) {
        if (!Files.exists(directory, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        Path target = trash.resolve(directory.getFileName() + "-" + sequence.incrementAndGet());
        try {
            Files.move(directory, target, StandardCopyOption.ATOMIC_MOVE);
            queue.add(target);
        } catch (IOException e) {
            log.warn(
                    "event=discard_rename_failed dir={} error=\"{}\" detail=\"deleting in place\"",
                    directory,
                    e.toString());
            deleteQuietly(directory);
        }
    }

    /** Entries waiting to be deleted (tests). */
    int pending() {
        return queue.size();
    }

    // STOP is compared by identity on purpose: it is a sentinel, and a queued Path.of("") must not stop the thread
    @SuppressWarnings("ReferenceEquality")
    private void run() {
        while (true) {
            Path next;
            try {
                next = queue.take();
            } catch (InterruptedException e) {
                return;
            }
            if (next == STOP) {
                return;
            }
            deleteQuietly(next);
        }
    }

    /** Removes an allocation directory now, logging (not throwing) a failure: nothing waits on the result. */
    static void deleteQuietly(Path directory) {
        try {
            delete(directory, 0);
        } catch (IOException e) {
            log.warn("event=allocation_files_not_removed dir={} error=\"{}\"", directory, e.toString());
        }
    }

    /** Deletes {@code path} and what it contains, links as links. */
    static void delete(Path path, int depth) throws IOException {
        if (Files.isDirectory(path, LinkOption.NOFOLLOW_LINKS)) {
            if (depth >= MAX_DEPTH) {
                throw new IOException(path + " is nested deeper than an allocation directory; left alone");
            }
            try (DirectoryStream<Path> entries = Files.newDirectoryStream(path)) {
                for (Path entry : entries) {
                    delete(entry, depth + 1);
                }
            }
        }
        Files.deleteIfExists(path);
    }

    /** Deletes what is queued, then stops. */
    @Override
    public void close() {
        queue.add(STOP);
        remover.close(Duration.ofSeconds(10)); // not interrupted: it deletes what is queued before the STOP
    }
}
