package io.omai.placement;

import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * The node's capacity at one moment: every GPU and HCA with what is held on it. The whole input of a placement
 * decision besides the demand and the {@link AntiAffinityPolicy}; GPUs are kept in index order, so the order a
 * caller lists them in cannot change an answer.
 */
public record NodeState(String nodeName, List<GpuState> gpus, List<HcaState> hcas) {
    public NodeState {
        Objects.requireNonNull(nodeName, "nodeName");
        gpus = gpus.stream()
                .sorted(Comparator.comparingInt(GpuState::index).thenComparing(GpuState::uuid))
                .toList();
        hcas = hcas.stream().sorted(Comparator.comparing(HcaState::name)).toList();
        var uuids = new HashSet<String>();
        var indices = new HashSet<Integer>();
        for (GpuState gpu : gpus) {
            if (!uuids.add(gpu.uuid())) {
                throw new IllegalArgumentException("node " + nodeName + ": GPU " + gpu.uuid() + " listed twice");
            }
            if (!indices.add(gpu.index())) {
                throw new IllegalArgumentException("node " + nodeName + ": GPU index " + gpu.index()
                        + " used twice; each GPU needs its own index");
            }
        }
        var vfs = new HashSet<String>();
        for (HcaState hca : hcas) {
            for (String vf : hca.vfIds()) {
                if (!vfs.add(vf)) {
                    throw new IllegalArgumentException("node " + nodeName + ": VF " + vf + " listed twice");
                }
            }
        }
    }

    public Optional<GpuState> gpu(String uuid) {
        return gpus.stream().filter(gpu -> gpu.uuid().equals(uuid)).findFirst();
    }

    /** Tenants holding GPU capacity anywhere on the node, sorted. */
    public Set<String> tenants() {
        var tenants = new TreeSet<String>();
        gpus.forEach(gpu -> tenants.addAll(gpu.tenants()));
        return tenants;
    }

    /** Free milli of the healthy GPUs on {@code numaNode}: how empty that NUMA node is. */
    public int milliFreeOnNuma(int numaNode) {
        return gpus.stream()
                .filter(gpu -> gpu.numaNode() == numaNode && gpu.healthy())
                .mapToInt(gpu -> Math.max(0, gpu.milliFree()))
                .sum();
    }

    /** This node with {@code gpu} replacing the GPU of the same UUID. */
    public NodeState with(GpuState gpu) {
        return new NodeState(
                nodeName,
                gpus.stream().map(g -> g.uuid().equals(gpu.uuid()) ? gpu : g).toList(),
                hcas);
    }
}
