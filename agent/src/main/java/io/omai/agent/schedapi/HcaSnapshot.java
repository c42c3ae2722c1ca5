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
 */
public record HcaSnapshot(
        String name,
        String pciAddress,
        int numaNode,
        String linkLayer,
        List<String> vfIds,
        Set<String> freeVfIds,
        List<String> qosCapabilities) {
    public HcaSnapshot {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(pciAddress, "pciAddress");
        Objects.requireNonNull(linkLayer, "linkLayer");
        vfIds = List.copyOf(vfIds);
        freeVfIds = Set.copyOf(freeVfIds);
        qosCapabilities = List.copyOf(qosCapabilities);
        if (!vfIds.containsAll(freeVfIds)) {
            throw new IllegalArgumentException("HCA " + name + ": free VFs " + freeVfIds + " not among " + vfIds);
        }
    }

    /** Free VF ids in the order of {@link #vfIds()}, so proposals are stable. */
    public List<String> freeVfIdsInOrder() {
        return vfIds.stream().filter(freeVfIds::contains).toList();
    }
}
