package io.omai.ibvf.alloc;

import io.omai.ibvf.discovery.SysfsValues;
import io.omai.ibvf.error.SysfsFormatException;
import io.omai.ibvf.error.VfNotReadyException;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.PciAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Resolves a VF's device nodes from its own PCI directory at the moment of allocation. Nothing is cached and nothing
 * is inferred from {@code mlx5_K}: {@code uverbsN}/{@code umadN} numbers come from kernel allocators and change on
 * every rebind, so only a fresh read is right.
 */
public final class VfDeviceNodeResolver {

    private static final String DEV_INFINIBAND = "/dev/infiniband/";

    private final Sysfs sysfs;
    private final SysfsValues values;

    public VfDeviceNodeResolver(Sysfs sysfs) {
        this.sysfs = sysfs;
        this.values = new SysfsValues(sysfs);
    }

    public VfAllocation resolve(PciAddress vf) {
        String rdmaDir = SysfsLayout.rdmaDevices(vf);
        List<String> rdmaDevices = sysfs.list(rdmaDir);
        if (rdmaDevices.isEmpty()) {
            throw new VfNotReadyException("VF " + vf + " has no RDMA device under " + rdmaDir
                    + " (no driver bound, or the device was moved into a pod's network namespace)");
        }
        if (rdmaDevices.size() > 1) {
            throw new SysfsFormatException(rdmaDir, String.join(",", rdmaDevices), "exactly one RDMA device per VF");
        }
        String rdma = rdmaDevices.getFirst();

        List<String> verbs = charDevicesOf(SysfsLayout.verbsDevices(vf), "uverbs", rdma);
        if (verbs.size() != 1) {
            throw new VfNotReadyException("VF " + vf + " (" + rdma + ") should have exactly one uverbs device under "
                    + SysfsLayout.verbsDevices(vf) + ", found " + verbs);
        }
        List<DeviceNode> nodes = new ArrayList<>();
        nodes.add(DeviceNode.sameInContainer(DEV_INFINIBAND + verbs.getFirst()));
        for (String mad : charDevicesOf(SysfsLayout.madDevices(vf), "umad", rdma)) {
            nodes.add(DeviceNode.sameInContainer(DEV_INFINIBAND + mad));
        }
        for (String issm : charDevicesOf(SysfsLayout.madDevices(vf), "issm", rdma)) {
            nodes.add(DeviceNode.sameInContainer(DEV_INFINIBAND + issm));
        }
        boolean rdmaCm = sysfs.exists(SysfsLayout.RDMA_CM_MISC_DEVICE);
        if (rdmaCm) {
            nodes.add(DeviceNode.sameInContainer(DEV_INFINIBAND + "rdma_cm"));
        }

        Map<String, String> env = new LinkedHashMap<>();
        env.put(VfAllocation.ENV_PCI_ADDRESS, vf.value());
        env.put(VfAllocation.ENV_RDMA_DEVICE, rdma);
        env.put(VfAllocation.ENV_UVERBS, verbs.getFirst());
        values.optionalGuid(SysfsLayout.rdmaDevice(vf, rdma) + "/node_guid")
                .ifPresent(guid -> env.put(VfAllocation.ENV_NODE_GUID, guid.toIpLinkFormat()));
        values.optionalPortGuidFromGid(SysfsLayout.rdmaPort(vf, rdma, 1) + "/gids/0")
                .map(Guid::toIpLinkFormat)
                .ifPresent(guid -> env.put(VfAllocation.ENV_PORT_GUID, guid));
        return new VfAllocation(vf, rdma, nodes, env, rdmaCm);
    }

    /** Entries named {@code <prefix>N} under {@code directory} whose {@code ibdev} is {@code rdma}, sorted. */
    private List<String> charDevicesOf(String directory, String prefix, String rdma) {
        List<String> matching = new ArrayList<>();
        for (String name : sysfs.list(directory)) {
            if (!name.startsWith(prefix)
                    || !name.substring(prefix.length()).chars().allMatch(Character::isDigit)
                    || name.length() == prefix.length()) {
                continue;
            }
            String ibdevPath = directory + "/" + name + "/ibdev";
            String ibdev = sysfs.readRequired(ibdevPath, "every " + prefix + " device names its RDMA device");
            if (!ibdev.equals(rdma)) {
                throw new SysfsFormatException(
                        ibdevPath, ibdev, "'" + rdma + "', the RDMA device of the same PCI function");
            }
            matching.add(name);
        }
        return matching;
    }
}
