package io.omai.ibvf.model;

import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * An SR-IOV capable RDMA PF as discovered in sysfs.
 *
 * @param pciClass        the 24-bit PCI class ({@code 0x020700} InfiniBand controller, {@code 0x020000} Ethernet)
 * @param linkLayer       the link layer of the first RDMA port, else derived from the PCI class when no RDMA device
 *                        is bound
 * @param numaNode        empty when the kernel reports {@code -1} (unknown; not node 0)
 * @param vfDeviceId      from {@code sriov_vf_device}, hex without {@code 0x}; never guessed from the PF's id
 * @param netdev          the PF's main netdev (the IPoIB one in IB mode), the target of {@code ip link ... vf N}
 * @param ports           the ports of the PF's RDMA device, empty when no RDMA device is bound
 */
public record PhysicalFunction(
        PciAddress address,
        String sysfsPath,
        int pciClass,
        String driver,
        LinkLayer linkLayer,
        OptionalInt numaNode,
        int totalVfs,
        int numVfs,
        String vfDeviceId,
        Optional<String> netdev,
        Optional<String> rdmaDevice,
        Optional<Guid> nodeGuid,
        List<RdmaPort> ports,
        List<VirtualFunction> vfs) {

    public PhysicalFunction {
        ports = List.copyOf(ports);
        vfs = List.copyOf(vfs);
    }

    /** State of the port VFs ride on (port 1 on ConnectX, one port per function); empty without an RDMA device. */
    public Optional<PortState> portState() {
        return ports.stream().findFirst().map(RdmaPort::state);
    }

    public Optional<VirtualFunction> vf(int index) {
        return vfs.stream().filter(vf -> vf.index() == index).findFirst();
    }
}
