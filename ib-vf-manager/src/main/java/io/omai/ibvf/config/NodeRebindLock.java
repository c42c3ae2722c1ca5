package io.omai.ibvf.config;

import io.omai.ibvf.error.Errno;
import io.omai.ibvf.error.KernelRejectedException;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;

/**
 * {@link RebindLock} over an advisory lock on a host file, so other processes on the node (a CNI plugin, a second
 * agent during a rolling update) can take the same lock. A JVM-wide lock per file is taken first because
 * {@link FileChannel#lock()} cannot be held twice by one JVM.
 */
public final class NodeRebindLock implements RebindLock {

    private static final ConcurrentHashMap<Path, ReentrantLock> IN_PROCESS = new ConcurrentHashMap<>();

    private final Path lockFile;

    public NodeRebindLock(Path lockFile) {
        this.lockFile = lockFile.toAbsolutePath().normalize();
    }

    @Override
    public void runExclusively(Runnable rebind) {
        ReentrantLock local = IN_PROCESS.computeIfAbsent(lockFile, path -> new ReentrantLock());
        local.lock();
        try {
            Files.createDirectories(lockFile.getParent());
            try (FileChannel channel = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                    FileLock _ = channel.lock()) {
                rebind.run();
            }
        } catch (IOException failure) {
            throw new KernelRejectedException(
                    Errno.EIO,
                    lockFile.toString(),
                    "lock",
                    "cannot take the node-wide VF rebind lock: " + failure,
                    failure);
        } finally {
            local.unlock();
        }
    }
}
