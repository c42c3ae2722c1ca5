package io.omai.ibvf.discovery;

import io.omai.ibvf.error.SysfsFormatException;
import io.omai.ibvf.error.SysfsMissingException;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.model.RdmaPort;
import io.omai.ibvf.model.VirtualFunction;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * Reads SR-IOV RDMA PFs and their VFs from sysfs. Stateless: every call reads the tree afresh, so callers poll it for
 * continuous rediscovery. A PF is a network-class function ({@code 0x02xxxx}) with {@code sriov_totalvfs}.
 */
public final class SysfsDiscovery {

    private static final int NETWORK_CLASS = 0x02;
    private static final int INFINIBAND_SUBCLASS = 0x0207;

    private final Sysfs sysfs;
    private final SysfsValues values;

    public SysfsDiscovery(Sysfs sysfs) {
        this.sysfs = sysfs;
        this.values = new SysfsValues(sysfs);
    }

    /** All SR-IOV capable network PFs on the node, by PCI address. */
    public List<PhysicalFunction> discover() {
        List<PhysicalFunction> pfs = new ArrayList<>();
        for (String name : sysfs.list(SysfsLayout.PCI_DEVICES)) {
            if (!PciAddress.isPciAddress(name)) {
                continue;
            }
            PciAddress address = PciAddress.of(name);
            if (isSriovNetworkPf(address)) {
                pfs.add(discoverPf(address));
            }
        }
        pfs.sort(Comparator.comparing(PhysicalFunction::address));
        return List.copyOf(pfs);
    }

    /** One PF and its current VFs. */
    public PhysicalFunction discoverPf(PciAddress pf) {
        if (!sysfs.exists(SysfsLayout.pciDevice(pf))) {
            throw new SysfsMissingException(SysfsLayout.pciDevice(pf), "no PCI function " + pf + " on this node");
        }
        String classPath = SysfsLayout.pciAttribute(pf, "class");
        int pciClass = values.prefixedHex(classPath, "every PCI function has a class");
        int totalVfs = values.decimal(SysfsLayout.pciAttribute(pf, "sriov_totalvfs"), pf + " must be SR-IOV capable");
        int numVfs = values.decimal(SysfsLayout.pciAttribute(pf, "sriov_numvfs"), pf + " must be SR-IOV capable");
        String vfDeviceId = values.bareHexDeviceId(
                SysfsLayout.pciAttribute(pf, "sriov_vf_device"), "the VF device id is read from the PF, never guessed");
        Optional<String> rdmaDevice = singleRdmaDevice(pf);
        List<RdmaPort> ports = rdmaDevice.map(device -> ports(pf, device)).orElse(List.of());
        LinkLayer linkLayer = ports.isEmpty()
                ? linkLayerFromClass(classPath, pciClass)
                : ports.getFirst().linkLayer();
        return new PhysicalFunction(
                pf,
                sysfs.canonicalPath(SysfsLayout.pciDevice(pf)),
                pciClass,
                sysfs.linkTargetName(SysfsLayout.pciAttribute(pf, "driver")).orElse(""),
                linkLayer,
                values.numaNode(SysfsLayout.pciAttribute(pf, "numa_node")),
                totalVfs,
                numVfs,
                vfDeviceId,
                mainNetdev(pf),
                rdmaDevice,
                rdmaDevice.flatMap(device -> values.optionalGuid(SysfsLayout.rdmaDevice(pf, device) + "/node_guid")),
                ports,
                vfs(pf, numVfs));
    }

    private boolean isSriovNetworkPf(PciAddress address) {
        if (!sysfs.exists(SysfsLayout.pciAttribute(address, "sriov_totalvfs"))) {
            return false;
        }
        int pciClass = values.prefixedHex(SysfsLayout.pciAttribute(address, "class"), "every PCI function has a class");
        return (pciClass >>> 16) == NETWORK_CLASS;
    }

    private static LinkLayer linkLayerFromClass(String classPath, int pciClass) {
        if ((pciClass >>> 16) != NETWORK_CLASS) {
            throw new SysfsFormatException(
                    classPath, "0x%06x".formatted(pciClass), "a network controller class 0x02xxxx");
        }
        return (pciClass >>> 8) == INFINIBAND_SUBCLASS ? LinkLayer.INFINIBAND : LinkLayer.ETHERNET;
    }

    private List<VirtualFunction> vfs(PciAddress pf, int numVfs) {
        List<VirtualFunction> vfs = new ArrayList<>(numVfs);
        for (int index = 0; index < numVfs; index++) {
            String link = SysfsLayout.virtfn(pf, index);
            Optional<String> target = sysfs.linkTargetName(link);
            if (target.isEmpty()) {
                // sriov_numvfs is written before the links appear; a VF still being created is simply not there yet.
                continue;
            }
            if (!PciAddress.isPciAddress(target.get())) {
                throw new SysfsFormatException(
                        link, target.get(), "a symlink to a PCI function such as ../0000:3b:00.1");
            }
            vfs.add(vf(pf, index, PciAddress.of(target.get())));
        }
        return vfs;
    }

    private VirtualFunction vf(PciAddress pf, int index, PciAddress address) {
        Optional<String> rdmaDevice = singleRdmaDevice(address);
        return new VirtualFunction(
                pf,
                index,
                address,
                sysfs.linkTargetName(SysfsLayout.pciAttribute(address, "driver")),
                mainNetdev(address),
                rdmaDevice,
                rdmaDevice.flatMap(
                        device -> values.optionalGuid(SysfsLayout.rdmaDevice(address, device) + "/node_guid")),
                rdmaDevice.flatMap(
                        device -> values.optionalPortGuidFromGid(SysfsLayout.rdmaPort(address, device, 1) + "/gids/0")),
                rdmaDevice.flatMap(
                        device -> values.optionalPortState(SysfsLayout.rdmaPort(address, device, 1) + "/state")));
    }

    /**
     * The function's RDMA device. mlx5 registers exactly one per function; more than one (switchdev representors)
     * is not a layout this module knows how to hand out, so it is refused rather than guessed.
     */
    private Optional<String> singleRdmaDevice(PciAddress function) {
        List<String> devices = sysfs.list(SysfsLayout.rdmaDevices(function));
        if (devices.size() > 1) {
            throw new SysfsFormatException(
                    SysfsLayout.rdmaDevices(function),
                    String.join(",", devices),
                    "exactly one RDMA device per PCI function");
        }
        return devices.stream().findFirst();
    }

    private List<RdmaPort> ports(PciAddress function, String rdmaDevice) {
        List<RdmaPort> ports = new ArrayList<>();
        for (String name : sysfs.list(SysfsLayout.rdmaPorts(function, rdmaDevice))) {
            String portDir = SysfsLayout.rdmaPorts(function, rdmaDevice) + "/" + name;
            int number;
            try {
                number = Integer.parseInt(name);
            } catch (NumberFormatException notAPort) {
                throw new SysfsFormatException(portDir, name, "numbered port directories such as ports/1");
            }
            ports.add(new RdmaPort(
                    number, values.linkLayer(portDir + "/link_layer"), values.portState(portDir + "/state")));
        }
        ports.sort(Comparator.comparingInt(RdmaPort::number));
        return ports;
    }

    /**
     * The function's main netdev. IPoIB pkey children ({@code ib0.8001}) also appear under {@code net/}; they are
     * skipped because {@code ip link ... vf N} must address the parent.
     */
    private Optional<String> mainNetdev(PciAddress function) {
        return sysfs.list(SysfsLayout.pciAttribute(function, "net")).stream()
                .filter(name -> !name.contains("."))
                .findFirst();
    }
}
