package io.omai.ibvf.kernel;

import io.omai.ibvf.error.Errno;
import io.omai.ibvf.error.IbVfException;
import io.omai.ibvf.error.KernelRejectedException;
import io.omai.ibvf.error.SysfsMissingException;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;

/**
 * The one place where raw kernel failures become typed exceptions. Both the real implementations and the test
 * fake kernel go through it, so a test that provokes EBUSY also exercises this mapping.
 */
public final class KernelErrors {

    private KernelErrors() {}

    /** A failed write of {@code value} to the sysfs attribute {@code path}. */
    public static IbVfException writeFailed(String path, String value, IOException failure) {
        if (failure instanceof NoSuchFileException) {
            return new SysfsMissingException(path, "cannot write '" + value + "'");
        }
        if (failure instanceof AccessDeniedException) {
            return new KernelRejectedException(Errno.EACCES, path, value, Errno.EACCES.strerror(), failure);
        }
        return rejected(path, value, failure.getMessage(), failure);
    }

    /** A failed read of the sysfs attribute {@code path} (a few attributes return errors instead of content). */
    public static IbVfException readFailed(String path, IOException failure) {
        if (failure instanceof NoSuchFileException) {
            return new SysfsMissingException(path, "it vanished while being read");
        }
        return rejected(path, "<read>", failure.getMessage(), failure);
    }

    /** A command such as {@code ip link set ...} that exited non-zero and printed {@code stderr}. */
    public static KernelRejectedException commandFailed(String commandLine, String value, String stderr) {
        return rejected(commandLine, value, stderr, null);
    }

    /** Builds the exception a kernel returning {@code errno} would cause; used by fakes to speak the kernel's words. */
    public static KernelRejectedException of(Errno errno, String target, String value) {
        return new KernelRejectedException(errno, target, value, errno.strerror(), null);
    }

    private static KernelRejectedException rejected(String target, String value, String detail, Throwable cause) {
        String text = detail == null ? "" : detail.strip();
        Errno errno = Errno.fromMessage(text).orElse(Errno.UNKNOWN);
        return new KernelRejectedException(errno, target, value, text.isEmpty() ? "no reason given" : text, cause);
    }
}
