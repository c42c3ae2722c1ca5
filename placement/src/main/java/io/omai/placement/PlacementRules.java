package io.omai.placement;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * The placement rules, each defined once. Pure functions of their arguments.
 *
 * <ul>
 *   <li><b>Capacity</b> ({@link #capacityShortfall}): a share fits where its milli and memory are free; a whole
 *       GPU only where nothing at all is held. So a GPU never holds more than {@link MilliGpu#PER_GPU} milli.</li>
 *   <li><b>Share tie-break</b> ({@link #shareTarget}): the GPU with the least free milli that still takes the
 *       share (bin packing keeps whole GPUs free); among equally full ones, the one on the fuller NUMA node (less
 *       free milli there, so whole NUMA nodes stay free for NUMA-aligned whole-GPU jobs); then the lowest index.</li>
 *   <li><b>Whole GPUs</b> ({@link #wholeGpus}): from one known NUMA node when one can supply them all (the node of
 *       the required GPUs, else the one with the fewest candidates that suffice, keeping larger groups intact,
 *       then the lowest node number); else over as few NUMA nodes as possible (largest groups first); within a
 *       node, lowest indices first.</li>
 *   <li><b>VFs</b> ({@link #vfs}): those on the GPUs' NUMA node first, then the rest, in HCA and VF order.</li>
 * </ul>
 * Anti-affinity is {@link AntiAffinityPolicy#refusal}.
 */
public final class PlacementRules {
    private PlacementRules() {}

    /**
     * Why {@code milliPerGpu} and {@code memoryBytes} do not fit on {@code gpu} (capacity only: health and
     * tenants are checked apart), or empty when they fit.
     */
    public static Optional<String> capacityShortfall(GpuState gpu, int milliPerGpu, long memoryBytes) {
        if (milliPerGpu <= 0 || milliPerGpu > MilliGpu.PER_GPU) {
            throw new IllegalArgumentException("milli per GPU " + milliPerGpu + " is outside 1.." + MilliGpu.PER_GPU);
        }
        if (milliPerGpu == MilliGpu.PER_GPU && !gpu.untouched()) {
            return Optional.of("a whole GPU was requested but " + gpu.milliUsed() + " milli and "
                    + Bytes.format(gpu.memoryUsedBytes()) + " are in use");
        }
        if (milliPerGpu > gpu.milliFree()) {
            return Optional.of(milliPerGpu + " milli requested, " + Math.max(0, gpu.milliFree()) + " free");
        }
        if (memoryBytes > gpu.memoryFreeBytes()) {
            return Optional.of(Bytes.format(memoryBytes) + " of memory requested, "
                    + Bytes.format(Math.max(0, gpu.memoryFreeBytes())) + " free");
        }
        return Optional.empty();
    }

    /**
     * Where a share goes among {@code candidates} (GPUs already known to take it), judged on {@code node}: see
     * the class comment. Empty when there is no candidate.
     */
    public static Optional<GpuState> shareTarget(List<GpuState> candidates, NodeState node) {
        Map<Integer, Integer> freeOnNuma = new HashMap<>();
        for (GpuState gpu : candidates) {
            freeOnNuma.computeIfAbsent(gpu.numaNode(), node::milliFreeOnNuma);
        }
        return candidates.stream()
                .min(Comparator.comparingInt(GpuState::milliFree)
                        .thenComparingInt(gpu -> freeOnNuma.get(gpu.numaNode()))
                        .thenComparingInt(GpuState::index));
    }

    /**
     * {@code count} GPUs among {@code candidates} (GPUs already known to be entirely free and eligible),
     * including every {@code required} one; see the class comment. In index order; empty when the candidates
     * are too few or miss a required GPU.
     */
    public static List<GpuState> wholeGpus(List<GpuState> candidates, int count, Set<String> required) {
        if (count <= 0) {
            throw new IllegalArgumentException("whole GPU count " + count + " is not positive");
        }
        List<GpuState> sorted = candidates.stream()
                .sorted(Comparator.comparingInt(GpuState::index))
                .toList();
        List<GpuState> chosen = new ArrayList<>(
                sorted.stream().filter(gpu -> required.contains(gpu.uuid())).toList());
        if (chosen.size() != required.size() || chosen.size() > count || sorted.size() < count) {
            return List.of();
        }
        Map<Integer, List<GpuState>> rest = new TreeMap<>();
        for (GpuState gpu : sorted) {
            if (!chosen.contains(gpu)) {
                rest.computeIfAbsent(gpu.numaNode(), numa -> new ArrayList<>()).add(gpu);
            }
        }
        int missing = count - chosen.size();
        Set<Integer> requiredNodes =
                new LinkedHashSet<>(chosen.stream().map(GpuState::numaNode).toList());
        boolean requiredOnOneKnownNode =
                requiredNodes.size() <= 1 && requiredNodes.stream().allMatch(n -> n >= 0);
        Optional<List<GpuState>> oneNode = requiredOnOneKnownNode
                ? rest.entrySet().stream()
                        .filter(e -> e.getKey() >= 0 && e.getValue().size() >= missing)
                        .filter(e -> requiredNodes.isEmpty() || requiredNodes.contains(e.getKey()))
                        .min(Comparator.<Map.Entry<Integer, List<GpuState>>>comparingInt(
                                        e -> e.getValue().size())
                                .thenComparingInt(Map.Entry::getKey))
                        .map(Map.Entry::getValue)
                : Optional.empty();
        if (missing == 0) {
            // nothing to add
        } else if (oneNode.isPresent()) {
            chosen.addAll(oneNode.get().subList(0, missing));
        } else {
            List<Map.Entry<Integer, List<GpuState>>> groups = new ArrayList<>(rest.entrySet());
            // as few nodes as possible: the required GPUs' nodes first, then the largest groups, unknown last
            groups.sort(Comparator.<Map.Entry<Integer, List<GpuState>>>comparingInt(
                            e -> requiredNodes.contains(e.getKey()) && e.getKey() >= 0 ? 0 : 1)
                    .thenComparingInt(e -> e.getKey() >= 0 ? 0 : 1)
                    .thenComparingInt(e -> -e.getValue().size())
                    .thenComparingInt(Map.Entry::getKey));
            for (Map.Entry<Integer, List<GpuState>> group : groups) {
                for (GpuState gpu : group.getValue()) {
                    if (chosen.size() < count) {
                        chosen.add(gpu);
                    }
                }
            }
        }
        return chosen.stream().sorted(Comparator.comparingInt(GpuState::index)).toList();
    }

    /**
     * Up to {@code count} of {@code free} VFs: those on HCAs of {@code numaNode} first (-1: no preference), then
     * the others, each in HCA and VF order.
     */
    public static List<String> vfs(List<HcaState> hcas, Set<String> free, int count, int numaNode) {
        if (count <= 0) {
            return List.of();
        }
        List<String> aligned = new ArrayList<>();
        List<String> others = new ArrayList<>();
        for (HcaState hca : hcas) {
            for (String vf : hca.vfIds()) {
                if (free.contains(vf)) {
                    (numaNode >= 0 && hca.numaNode() == numaNode ? aligned : others).add(vf);
                }
            }
        }
        aligned.addAll(others);
        return List.copyOf(aligned.subList(0, Math.min(count, aligned.size())));
    }
}
