package io.omai.ibvf.alloc;

import io.omai.ibvf.alloc.PciTopology.PciLocation;
import io.omai.ibvf.model.PciAddress;
import java.util.Comparator;
import java.util.List;
import java.util.OptionalInt;

/**
 * Orders candidate VFs for a pod by closeness to the GPUs it holds: a VF behind the same PCIe switch as one of the
 * GPUs first (GPUDirect RDMA stays under the switch), then one on the same NUMA node, then the rest. Within a rank,
 * a deeper shared bridge wins, then PCI address order keeps the result stable.
 */
public final class VfPreference {

    private final PciTopology topology;

    public VfPreference(PciTopology topology) {
        this.topology = topology;
    }

    public enum Affinity {
        SAME_PCIE_SWITCH,
        SAME_NUMA_NODE,
        NONE
    }

    public record RankedVf(PciAddress vf, Affinity affinity, int sharedUpstream) {}

    public List<RankedVf> order(List<PciAddress> candidateVfs, List<GpuPlacement> gpus) {
        List<PciLocation> gpuLocations = gpus.stream().map(this::locate).toList();
        return candidateVfs.stream()
                .map(vf -> rank(topology.locate(vf), gpuLocations))
                .sorted(Comparator.comparing(RankedVf::affinity)
                        .thenComparing(Comparator.comparingInt(RankedVf::sharedUpstream)
                                .reversed())
                        .thenComparing(RankedVf::vf))
                .toList();
    }

    private PciLocation locate(GpuPlacement gpu) {
        if (gpu.address().isEmpty()) {
            return new PciLocation(null, List.of(), gpu.numaNode()); // no PCIe position: it can only match by NUMA
        }
        PciLocation fromSysfs = topology.locate(gpu.address().get());
        OptionalInt numa = gpu.numaNode().isPresent() ? gpu.numaNode() : fromSysfs.numaNode();
        return new PciLocation(gpu.address().get(), fromSysfs.upstream(), numa);
    }

    private static RankedVf rank(PciLocation vf, List<PciLocation> gpus) {
        Affinity best = Affinity.NONE;
        int deepest = 0;
        for (PciLocation gpu : gpus) {
            Affinity affinity = vf.sharesPcieBridgeWith(gpu)
                    ? Affinity.SAME_PCIE_SWITCH
                    : sameKnownNuma(vf.numaNode(), gpu.numaNode()) ? Affinity.SAME_NUMA_NODE : Affinity.NONE;
            if (affinity.compareTo(best) < 0) {
                best = affinity;
            }
            deepest = Math.max(deepest, vf.sharedUpstream(gpu));
        }
        return new RankedVf(vf.address(), best, deepest);
    }

    /** NUMA -1 (unknown) never matches anything, not even another unknown. */
    private static boolean sameKnownNuma(OptionalInt a, OptionalInt b) {
        return a.isPresent() && b.isPresent() && a.getAsInt() == b.getAsInt();
    }
}
