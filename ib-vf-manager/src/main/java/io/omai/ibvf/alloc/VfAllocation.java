package io.omai.ibvf.alloc;

import io.omai.ibvf.model.PciAddress;
import java.util.List;
import java.util.Map;

/**
 * What a container needs to use one VF, computed from sysfs at allocation time: its RDMA char devices
 * ({@code uverbsN}, {@code umadN}, {@code issmN}, and {@code rdma_cm} when the {@code rdma_ucm} module is loaded) and
 * environment variables naming the VF.
 */
public record VfAllocation(
        PciAddress address,
        String rdmaDevice,
        List<DeviceNode> deviceNodes,
        Map<String, String> env,
        boolean rdmaCmAvailable) {

    public static final String ENV_PCI_ADDRESS = "OMAI_IB_VF_PCI_ADDRESS";
    public static final String ENV_RDMA_DEVICE = "OMAI_IB_VF_RDMA_DEVICE";
    public static final String ENV_UVERBS = "OMAI_IB_VF_UVERBS";
    public static final String ENV_NODE_GUID = "OMAI_IB_VF_NODE_GUID";
    public static final String ENV_PORT_GUID = "OMAI_IB_VF_PORT_GUID";

    public VfAllocation {
        deviceNodes = List.copyOf(deviceNodes);
        env = Map.copyOf(env);
    }
}
