package io.omai.ibvf.kernel;

import io.omai.ibvf.error.Errno;
import io.omai.ibvf.error.IbVfException;
import io.omai.ibvf.error.KernelRejectedException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Bounds how long a sysfs write may block the caller. Writes to {@code sriov_numvfs} or a driver's {@code bind} can
 * hang for minutes on a sick device (sriov-network-operator wraps them in a 2-minute timeout); this decorator runs
 * each write on its own virtual thread and gives up waiting after {@code writeTimeout} with ETIMEDOUT. The kernel
 * call itself cannot be cancelled: it finishes (or not) in the background, and the next reconcile re-reads state.
 * Reads are cheap attribute lookups and pass straight through.
 */
public final class TimeLimitedSysfs implements Sysfs {

    private final Sysfs delegate;
    private final Duration writeTimeout;

    public TimeLimitedSysfs(Sysfs delegate, Duration writeTimeout) {
        if (writeTimeout.isNegative() || writeTimeout.isZero()) {
            throw new IllegalArgumentException("sysfs write timeout must be positive, got " + writeTimeout);
        }
        this.delegate = delegate;
        this.writeTimeout = writeTimeout;
    }

    @Override
    public void write(String path, String value) {
        FutureTask<Void> write = new FutureTask<>(() -> delegate.write(path, value), null);
        Thread.ofVirtual().name("sysfs-write " + path).start(write);
        try {
            write.get(writeTimeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException slow) {
            throw new KernelRejectedException(
                    Errno.ETIMEDOUT,
                    path,
                    value,
                    "still blocked after " + writeTimeout + "; the device may be hung (see dmesg)",
                    slow);
        } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            throw KernelErrors.of(Errno.ETIMEDOUT, path, value);
        } catch (ExecutionException failed) {
            if (failed.getCause() instanceof IbVfException typed) {
                throw typed;
            }
            throw new IllegalStateException("unexpected failure writing '" + value + "' to " + path, failed.getCause());
        }
    }

    @Override
    public Optional<String> read(String path) {
        return delegate.read(path);
    }

    @Override
    public List<String> list(String directory) {
        return delegate.list(directory);
    }

    @Override
    public boolean exists(String path) {
        return delegate.exists(path);
    }

    @Override
    public Optional<String> linkTargetName(String path) {
        return delegate.linkTargetName(path);
    }

    @Override
    public String canonicalPath(String path) {
        return delegate.canonicalPath(path);
    }
}
