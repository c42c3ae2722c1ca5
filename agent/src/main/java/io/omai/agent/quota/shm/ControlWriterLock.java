package io.omai.agent.quota.shm;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * The right to write one allocation's control file: an exclusive lock on {@value #FILE} in the allocation's
 * directory, held by the running agent for as long as it maps the allocation, and by {@code omai set} while no
 * agent runs. The seqlock in the control file assumes one writer; this lock is how two processes agree on which.
 *
 * <p>The lock lives in its own file, not on the control file: a container holds the control file through a
 * read-only bind and could take a read lock on it, which would block the agent. {@value #FILE} is in the
 * allocation directory (mode 0700), which no container mounts. The holder's pid is written into the file so a
 * refused writer can say who holds it. The lock is a POSIX record lock: it goes with the process that dies.
 */
public final class ControlWriterLock implements AutoCloseable {
    public static final String FILE = "writer.lock";

    /** Another process (or another owner in this one) holds the lock. */
    public static final class HeldException extends IOException {
        private static final long serialVersionUID = 1L;

        HeldException(String message) {
            super(message);
        }
    }

    private final FileChannel channel;
    private final FileLock lock;

    private ControlWriterLock(FileChannel channel, FileLock lock) {
        this.channel = channel;
        this.lock = lock;
    }

    /**
     * Takes the lock of {@code allocationDirectory} without waiting.
     *
     * @throws HeldException when someone else holds it, naming the holder's pid as it recorded it
     * @throws IOException when the lock file cannot be created or opened
     */
    public static ControlWriterLock acquire(Path allocationDirectory) throws IOException {
        Path file = allocationDirectory.resolve(FILE);
        FileChannel channel = FileChannel.open(
                file,
                java.util.Set.of(StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        try {
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null; // this very process already owns it through another object
            }
            if (lock == null) {
                String holder = holder(file);
                throw new HeldException("the control file in " + allocationDirectory + " has a writer already ("
                        + (holder.isEmpty() ? "unknown process" : "pid " + holder) + " holds " + file
                        + "); only one process may write it: the running agent owns every allocation it serves, "
                        + "so change limits through the agent or stop it first");
            }
            channel.truncate(0);
            channel.write(
                    ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII)), 0);
            return new ControlWriterLock(channel, lock);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    private static String holder(Path file) {
        try {
            return Files.readString(file, StandardCharsets.US_ASCII).trim();
        } catch (IOException e) {
            return "";
        }
    }

    /** Releases the lock; the file stays (deleting it would race with the next holder's open). */
    @Override
    public void close() {
        try {
            if (lock.isValid()) {
                lock.release();
            }
            channel.close();
        } catch (IOException e) {
            // closing the channel releases the lock in any case
        }
    }
}
