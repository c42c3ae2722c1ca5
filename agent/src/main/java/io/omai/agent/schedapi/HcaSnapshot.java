package io.omai.agent.schedapi;

import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * One InfiniBand/RoCE physical function and its SR-IOV VFs, as the VF manager reports them.
 *
 * @param name RDMA device name, e.g. mlx5_0
 * @param numaNode -1 when unknown
 * @param linkLayer "InfiniBand" or "Ethernet"
 * @param vfIds every VF's id (its PCI address), in order
 * @param freeVfIds the VFs not allocated to a container
 * @param qosCapabilities what the link layer can enforce per VF, e.g. "max_tx_rate"; empty on InfiniBand
 * @param pcieSwitch the PCIe switch the PF sits under (see {@link PciePlace}); empty when unknown
 * @param resourceName the extended resource its VFs are offered as; empty when no resource selects the PF (its VFs
 *     are then never free)
 */
public record HcaSnapshot(
        String name,
        String pciAddress,
        int numaNode,
        String linkLayer,
        List<String> vfIds,
        Set<String> freeVfIds,
        List<String> qosCapabilities,
        String pcieSwitch,
        String resourceName) {
    /** A PF offered as the default VF resource, its PCIe place unknown. */
    public HcaSnapshot(
            String name,
            String pciAddress,
            int numaNode,
            String linkLayer,
            List<String> vfIds,
            Set<String> freeVfIds,
            List<String> qosCapabilities) {
        this(name, pciAddress, numaNode, linkLayer, vfIds, freeVfIds, qosCapabilities, "", DEFAULT_VF_RESOURCE);
    }

    /** The VF resource a Fit request means when it names none. */
    public static final String DEFAULT_VF_RESOURCE = "omai.io/ib-vf";

    public HcaSnapshot {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(pciAddress, "pciAddress");
        Objects.requireNonNull(linkLayer, "linkLayer");
        vfIds = List.copyOf(vfIds);
        freeVfIds = Set.copyOf(freeVfIds);
        qosCapabilities = List.copyOf(qosCapabilities);
        Objects.requireNonNull(pcieSwitch, "pcieSwitch");
        Objects.requireNonNull(resourceName, "resourceName");
        if (resourceName.isEmpty() && !freeVfIds.isEmpty()) {
            throw new IllegalArgumentException(
                    "HCA " + name + ": VFs " + freeVfIds + " free but offered as no resource");
        }
        if (!vfIds.containsAll(freeVfIds)) {
            throw new IllegalArgumentException("HCA " + name + ": free VFs " + freeVfIds + " not among " + vfIds);
        }
    }

    /** Free VF ids in the order of {@link #vfIds()}, so proposals are stable. */
    public List<String> freeVfIdsInOrder() {
        return vfIds.stream().filter(freeVfIds::contains).toList();
    }
}
