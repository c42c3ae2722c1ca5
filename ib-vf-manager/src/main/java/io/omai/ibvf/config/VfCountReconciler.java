package io.omai.ibvf.config;

import io.omai.ibvf.discovery.SysfsValues;
import io.omai.ibvf.error.Errno;
import io.omai.ibvf.error.KernelRejectedException;
import io.omai.ibvf.error.VfNotReadyException;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.model.PciAddress;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Brings a PF's {@code sriov_numvfs} to a desired count, idempotently. The kernel refuses to change a non-zero count
 * (EBUSY), so a new count is always preceded by 0; a count above {@code sriov_totalvfs} is refused here, before the
 * kernel sees it. After writing it waits (bounded) until every VF has its {@code virtfnN} link, a driver and an RDMA
 * device.
 */
public final class VfCountReconciler {

    private static final Logger log = LoggerFactory.getLogger(VfCountReconciler.class);

    private final Sysfs sysfs;
    private final SysfsValues values;
    private final BoundedWait wait;

    public VfCountReconciler(Sysfs sysfs, BoundedWait wait) {
        this.sysfs = sysfs;
        this.values = new SysfsValues(sysfs);
        this.wait = wait;
    }

    /** What a reconcile found and did. {@code changed} is false when the count already matched. */
    public record CountChange(PciAddress pf, int previous, int enabled, boolean changed) {}

    public CountChange reconcile(PciAddress pf, int desired) {
        if (desired < 0) {
            throw new IllegalArgumentException("desired VF count for " + pf + " must be >= 0, got " + desired);
        }
        String numVfsPath = SysfsLayout.pciAttribute(pf, "sriov_numvfs");
        String totalVfsPath = SysfsLayout.pciAttribute(pf, "sriov_totalvfs");
        int total = values.decimal(totalVfsPath, pf + " must be SR-IOV capable");
        if (desired > total) {
            throw new KernelRejectedException(
                    Errno.ERANGE,
                    numVfsPath,
                    Integer.toString(desired),
                    "refused before writing: " + totalVfsPath + " is " + total
                            + " (raise NUM_OF_VFS in the HCA firmware to allow more)",
                    null);
        }
        int previous = values.decimal(numVfsPath, pf + " must be SR-IOV capable");
        boolean changed = previous != desired;
        if (changed) {
            if (previous != 0) {
                sysfs.write(numVfsPath, "0");
            }
            if (desired != 0) {
                sysfs.write(numVfsPath, Integer.toString(desired));
            }
            log.info("pf={} sriov_numvfs {} -> {}", pf, previous, desired);
        }
        int enabled = values.decimal(numVfsPath, pf + " must be SR-IOV capable");
        if (enabled != desired) {
            // drivers may enable fewer VFs than asked and still report success
            throw new VfNotReadyException("pf " + pf + ": wrote " + desired + " to " + numVfsPath + " but it reads "
                    + enabled + " (see dmesg: the driver enabled fewer VFs, e.g. for lack of MSI-X or bus numbers)");
        }
        waitForVfs(pf, enabled);
        return new CountChange(pf, previous, enabled, changed);
    }

    /** Waits until VFs 0..count-1 exist with a driver and an RDMA device. */
    public void waitForVfs(PciAddress pf, int count) {
        wait.until("pf " + pf + " with " + count + " VFs", () -> firstUnreadyVf(pf, count));
    }

    private Optional<String> firstUnreadyVf(PciAddress pf, int count) {
        for (int index = 0; index < count; index++) {
            String link = SysfsLayout.virtfn(pf, index);
            Optional<String> target = sysfs.linkTargetName(link);
            if (target.isEmpty()) {
                return Optional.of(link + " is missing");
            }
            PciAddress vf = PciAddress.of(target.get());
            if (!sysfs.exists(SysfsLayout.pciAttribute(vf, "driver"))) {
                return Optional.of("VF " + index + " (" + vf + ") has no driver bound; check "
                        + SysfsLayout.pciAttribute(pf, "sriov_drivers_autoprobe") + " is 1");
            }
            if (sysfs.list(SysfsLayout.rdmaDevices(vf)).isEmpty()) {
                return Optional.of(
                        "VF " + index + " (" + vf + ") has no RDMA device under " + SysfsLayout.rdmaDevices(vf));
            }
        }
        return Optional.empty();
    }
}
