package io.omai.ibvf.kernel;

import io.omai.ibvf.model.PciAddress;

/** Every sysfs location this module touches, relative to the sysfs root; one place to read them all. */
public final class SysfsLayout {

    public static final String PCI_DEVICES = "bus/pci/devices";
    /** The misc device {@code rdma_ucm} registers; {@code /dev/infiniband/rdma_cm} exists exactly when this does. */
    public static final String RDMA_CM_MISC_DEVICE = "class/misc/rdma_cm";

    private SysfsLayout() {}

    public static String pciDevice(PciAddress address) {
        return PCI_DEVICES + "/" + address;
    }

    public static String pciAttribute(PciAddress address, String attribute) {
        return pciDevice(address) + "/" + attribute;
    }

    public static String virtfn(PciAddress pf, int index) {
        return pciAttribute(pf, "virtfn" + index);
    }

    public static String rdmaDevices(PciAddress function) {
        return pciAttribute(function, "infiniband");
    }

    public static String rdmaDevice(PciAddress function, String rdmaDevice) {
        return rdmaDevices(function) + "/" + rdmaDevice;
    }

    public static String rdmaPorts(PciAddress function, String rdmaDevice) {
        return rdmaDevice(function, rdmaDevice) + "/ports";
    }

    public static String rdmaPort(PciAddress function, String rdmaDevice, int port) {
        return rdmaPorts(function, rdmaDevice) + "/" + port;
    }

    public static String verbsDevices(PciAddress function) {
        return pciAttribute(function, "infiniband_verbs");
    }

    public static String madDevices(PciAddress function) {
        return pciAttribute(function, "infiniband_mad");
    }

    /** MLNX_OFED-only per-VF GUID/policy directory under the PF; absent on upstream kernels. */
    public static String mlnxVfConfig(PciAddress pf, int vfIndex) {
        return pciAttribute(pf, "sriov/" + vfIndex);
    }

    public static String driverBind(String driver) {
        return "bus/pci/drivers/" + driver + "/bind";
    }

    public static String driverUnbind(String driver) {
        return "bus/pci/drivers/" + driver + "/unbind";
    }
}
