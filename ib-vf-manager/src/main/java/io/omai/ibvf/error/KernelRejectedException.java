package io.omai.ibvf.error;

import java.util.Objects;

/**
 * The kernel refused a write to sysfs or an {@code ip link} request. {@link #errno()} says why; the message names the
 * target (a sysfs path or the command line), the value written and the kernel's own reason.
 */
public final class KernelRejectedException extends IbVfException {

    private final Errno errno;
    private final String target;
    private final String value;

    public KernelRejectedException(Errno errno, String target, String value, String detail, Throwable cause) {
        super(errno.name() + " writing '" + value + "' to " + target + ": " + detail + hint(errno), cause);
        this.errno = Objects.requireNonNull(errno);
        this.target = target;
        this.value = value;
    }

    private static String hint(Errno errno) {
        return switch (errno) {
            case EBUSY -> " (SR-IOV VFs are already enabled or the device is in use; write 0 before a new count)";
            case ERANGE -> " (value exceeds what the device allows, e.g. sriov_totalvfs)";
            case ENOENT -> " (no driver bound or the driver does not support this operation)";
            case EOPNOTSUPP -> " (the driver does not implement this operation for this link layer)";
            case ENOMEM -> " (not enough MMIO space or bus numbers; check BIOS SR-IOV settings or pci=realloc)";
            case EACCES, EPERM -> " (the agent needs CAP_SYS_ADMIN/CAP_NET_ADMIN and a writable /sys)";
            default -> "";
        };
    }

    public Errno errno() {
        return errno;
    }

    public String target() {
        return target;
    }

    public String value() {
        return value;
    }
}
