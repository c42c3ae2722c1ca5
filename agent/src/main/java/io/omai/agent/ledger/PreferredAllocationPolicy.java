package io.omai.agent.ledger;

import io.omai.agent.gpu.GpuDevice;
import io.omai.placement.GpuState;
import io.omai.placement.MilliGpu;
import io.omai.placement.NodeState;
import io.omai.placement.PlacementRules;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * Where a request should go, from kubelet's candidate IDs: an adapter from the IDs to the placement model
 * ({@link PlacementRules}, docs/architecture.md "Placement model"). Each GPU is seen as used by the IDs kubelet
 * does not offer; the model picks the GPUs, this class the IDs on them (must-include first, then the lowest
 * free slots). Pure: no state, no I/O.
 *
 * <ul>
 *   <li>Below 1000: one GPU, never a split, by the model's share tie-break (fullest GPU that still fits, then
 *       the fuller NUMA node, then the lowest index).</li>
 *   <li>A multiple of 1000: that many entirely free GPUs, on one NUMA node when one node can supply them all.</li>
 *   <li>Anything else (1500, say) cannot be placed without splitting a share: refused.</li>
 * </ul>
 */
final class PreferredAllocationPolicy {
    private PreferredAllocationPolicy() {}

    static List<MilliGpuId> choose(
            List<GpuDevice> gpus, Collection<MilliGpuId> available, Collection<MilliGpuId> mustInclude, int size)
            throws LedgerException {
        if (size <= 0) {
            throw new LedgerException.InvalidRequest("allocation_size " + size + " is not positive");
        }
        Map<String, BitSet> free = new LinkedHashMap<>();
        for (GpuDevice gpu : gpus) {
            free.put(gpu.uuid(), new BitSet(MilliGpu.PER_GPU));
        }
        for (MilliGpuId id : available) {
            free.get(id.uuid()).set(id.slot());
        }
        // kubelet's contract: must-include IDs are among the available ones. One that is not may be held by a
        // running container; returning it would hand one device to two containers.
        List<String> notAvailable = mustInclude.stream()
                .filter(id -> !free.get(id.uuid()).get(id.slot()))
                .map(MilliGpuId::id)
                .sorted()
                .toList();
        if (!notAvailable.isEmpty()) {
            throw new LedgerException.InvalidRequest("must_include_deviceIDs " + describeIds(notAvailable)
                    + " are not in available_deviceIDs; kubelet must include only IDs it offers as available");
        }
        if (mustInclude.size() > size) {
            throw new LedgerException.InvalidRequest(
                    "must_include_deviceIDs has " + mustInclude.size() + " IDs but allocation_size is " + size);
        }
        NodeState node = asOffered(gpus, free);
        if (MilliGpu.isShare(size)) {
            return shareOfOneGpu(node, free, mustInclude, size);
        }
        if (MilliGpu.isValid(size)) {
            return wholeGpus(node, mustInclude, MilliGpu.gpuCount(size));
        }
        throw new LedgerException.InvalidRequest("allocation_size " + size + " cannot be placed without splitting "
                + "a share across GPUs: a share below " + MilliGpu.PER_GPU + " stays on one GPU, a larger "
                + "one must be a multiple of " + MilliGpu.PER_GPU + " (whole GPUs)");
    }

    /** The node as kubelet's offer shows it: each GPU used by the IDs not offered; memory plays no part here. */
    private static NodeState asOffered(List<GpuDevice> gpus, Map<String, BitSet> free) {
        List<GpuState> states = new ArrayList<>(gpus.size());
        for (GpuDevice gpu : gpus) {
            states.add(new GpuState(
                    gpu.uuid(),
                    gpu.index(),
                    gpu.hasNumaNode() ? gpu.numaNode() : -1,
                    "",
                    true,
                    "",
                    gpu.memoryBytes(),
                    MilliGpu.PER_GPU - free.get(gpu.uuid()).cardinality(),
                    0,
                    Set.of()));
        }
        return new NodeState("", states, List.of());
    }

    private static List<MilliGpuId> shareOfOneGpu(
            NodeState node, Map<String, BitSet> free, Collection<MilliGpuId> mustInclude, int size)
            throws LedgerException {
        Set<String> mustGpus =
                mustInclude.stream().map(MilliGpuId::uuid).collect(Collectors.toCollection(TreeSet::new));
        if (mustGpus.size() > 1) {
            throw new LedgerException.InvalidRequest("must_include_deviceIDs are on GPUs " + mustGpus + "; a share "
                    + "of " + size + " (below " + MilliGpu.PER_GPU + ") must stay on one GPU");
        }
        List<GpuState> candidates = node.gpus().stream()
                .filter(gpu -> gpu.milliFree() >= size)
                .filter(gpu -> mustGpus.isEmpty() || mustGpus.contains(gpu.uuid()))
                .toList();
        GpuState best = PlacementRules.shareTarget(candidates, node)
                .orElseThrow(() -> new LedgerException.NoFit("no single GPU has " + size
                        + " free milli among the candidates" + (mustGpus.isEmpty() ? "" : " on " + mustGpus)
                        + " (free per GPU: " + describeFree(node) + "); a share is never split across GPUs"));
        Set<Integer> slots = new LinkedHashSet<>();
        for (MilliGpuId id : mustInclude) {
            slots.add(id.slot());
        }
        BitSet bestFree = free.get(best.uuid());
        for (int slot = bestFree.nextSetBit(0);
                slot >= 0 && slots.size() < size;
                slot = bestFree.nextSetBit(slot + 1)) {
            slots.add(slot);
        }
        return slots.stream()
                .map(slot -> new MilliGpuId(best.uuid(), slot))
                .sorted()
                .toList();
    }

    private static List<MilliGpuId> wholeGpus(NodeState node, Collection<MilliGpuId> mustInclude, int count)
            throws LedgerException {
        List<GpuState> wholeFree =
                node.gpus().stream().filter(GpuState::untouched).toList();
        Set<String> mustGpus =
                mustInclude.stream().map(MilliGpuId::uuid).collect(Collectors.toCollection(TreeSet::new));
        for (String uuid : mustGpus) {
            if (wholeFree.stream().noneMatch(gpu -> gpu.uuid().equals(uuid))) {
                throw new LedgerException.NoFit("must_include_deviceIDs name GPU " + uuid
                        + ", which is not entirely free; " + count + " whole GPUs were requested");
            }
        }
        if (mustGpus.size() > count) {
            throw new LedgerException.InvalidRequest("must_include_deviceIDs span " + mustGpus.size()
                    + " GPUs but only " + count + " whole GPUs were requested");
        }
        if (wholeFree.size() < count) {
            throw new LedgerException.NoFit(count + " entirely free GPUs requested, but only " + wholeFree.size()
                    + " among the candidates are (free per GPU: " + describeFree(node) + ")");
        }
        List<GpuState> chosen = PlacementRules.wholeGpus(wholeFree, count, mustGpus);
        List<MilliGpuId> ids = new ArrayList<>(count * MilliGpu.PER_GPU);
        for (GpuState gpu : chosen) {
            for (int slot = 0; slot < MilliGpu.PER_GPU; slot++) {
                ids.add(new MilliGpuId(gpu.uuid(), slot));
            }
        }
        ids.sort(null);
        return ids;
    }

    private static String describeIds(List<String> ids) {
        return ids.size() <= 4 ? ids.toString() : ids.subList(0, 4) + " and " + (ids.size() - 4) + " more";
    }

    private static String describeFree(NodeState node) {
        return node.gpus().stream()
                .map(gpu -> gpu.uuid() + "=" + gpu.milliFree())
                .collect(Collectors.joining(", "));
    }
}
