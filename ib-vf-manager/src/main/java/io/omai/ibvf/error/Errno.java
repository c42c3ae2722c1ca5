package io.omai.ibvf.error;

import java.util.Locale;
import java.util.Optional;

/**
 * The error numbers SR-IOV and IB configuration can return, with the strerror text glibc prints for them. Java only
 * exposes a failed sysfs write as an {@code IOException} carrying that text, and {@code ip} prints it on stderr, so the
 * text is the only portable way back to the number.
 */
public enum Errno {
    EPERM("Operation not permitted"),
    ENOENT("No such file or directory"),
    EIO("Input/output error"),
    ENOMEM("Cannot allocate memory"),
    EACCES("Permission denied"),
    EBUSY("Device or resource busy"),
    ENODEV("No such device"),
    EINVAL("Invalid argument"),
    ERANGE("Numerical result out of range"),
    EOPNOTSUPP("Operation not supported"),
    ETIMEDOUT("Connection timed out"),
    /** Anything not recognised; the original text is kept in the exception message. */
    UNKNOWN("");

    private final String strerror;

    Errno(String strerror) {
        this.strerror = strerror;
    }

    public String strerror() {
        return strerror;
    }

    /** Finds the errno whose strerror text appears in {@code message}; {@code ip} also says "Cannot find device". */
    public static Optional<Errno> fromMessage(String message) {
        if (message == null) {
            return Optional.empty();
        }
        String lower = message.toLowerCase(Locale.ROOT);
        for (Errno errno : values()) {
            if (errno != UNKNOWN && lower.contains(errno.strerror.toLowerCase(Locale.ROOT))) {
                return Optional.of(errno);
            }
        }
        if (lower.contains("cannot find device")) {
            return Optional.of(ENODEV);
        }
        return Optional.empty();
    }
}
