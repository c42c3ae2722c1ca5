package io.omai.agent.ledger;

import io.omai.agent.gpu.GpuDevice;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * Where a request should go, from kubelet's candidate IDs. Pure: no state, no I/O.
 *
 * <ul>
 *   <li>Below 1000: one GPU, never a split. Bin-packing: the fullest GPU (fewest available IDs) that still fits;
 *       among equally full GPUs, the one on the fullest NUMA node, so whole GPUs and whole NUMA nodes stay free
 *       for large jobs.</li>
 *   <li>A multiple of 1000: that many entirely free GPUs, on one NUMA node when one node can supply them all
 *       (the node with the fewest free GPUs that suffices), else spread over as few nodes as possible.</li>
 *   <li>Anything else (1500, say) cannot be placed without splitting a share: refused.</li>
 * </ul>
 */
final class PreferredAllocationPolicy {
    private PreferredAllocationPolicy() {}

    static List<MilliGpuId> choose(List<GpuDevice> gpus, Collection<MilliGpuId> available,
                                   Collection<MilliGpuId> mustInclude, int size) throws LedgerException {
        if (size <= 0) {
            throw new LedgerException.InvalidRequest("allocation_size " + size + " is not positive");
        }
        Map<String, BitSet> free = new LinkedHashMap<>();
        for (GpuDevice gpu : gpus) {
            free.put(gpu.uuid(), new BitSet(MilliGpuId.SLOTS_PER_GPU));
        }
        for (MilliGpuId id : available) {
            free.get(id.uuid()).set(id.slot());
        }
        // kubelet's contract: must-include IDs are among the available ones. One that is not may be held by a
        // running container; returning it would hand one device to two containers.
        List<String> notAvailable = mustInclude.stream()
                .filter(id -> !free.get(id.uuid()).get(id.slot())).map(MilliGpuId::id).sorted().toList();
        if (!notAvailable.isEmpty()) {
            throw new LedgerException.InvalidRequest("must_include_deviceIDs " + describeIds(notAvailable)
                    + " are not in available_deviceIDs; kubelet must include only IDs it offers as available");
        }
        if (mustInclude.size() > size) {
            throw new LedgerException.InvalidRequest("must_include_deviceIDs has " + mustInclude.size()
                    + " IDs but allocation_size is " + size);
        }
        if (size < MilliGpuId.SLOTS_PER_GPU) {
            return shareOfOneGpu(gpus, free, mustInclude, size);
        }
        if (size % MilliGpuId.SLOTS_PER_GPU == 0) {
            return wholeGpus(gpus, free, mustInclude, size / MilliGpuId.SLOTS_PER_GPU);
        }
        throw new LedgerException.InvalidRequest("allocation_size " + size + " cannot be placed without splitting "
                + "a share across GPUs: a share below " + MilliGpuId.SLOTS_PER_GPU + " stays on one GPU, a larger "
                + "one must be a multiple of " + MilliGpuId.SLOTS_PER_GPU + " (whole GPUs)");
    }

    private static List<MilliGpuId> shareOfOneGpu(List<GpuDevice> gpus, Map<String, BitSet> free,
                                                  Collection<MilliGpuId> mustInclude, int size) throws LedgerException {
        Set<String> mustGpus = mustInclude.stream().map(MilliGpuId::uuid).collect(Collectors.toCollection(TreeSet::new));
        if (mustGpus.size() > 1) {
            throw new LedgerException.InvalidRequest("must_include_deviceIDs are on GPUs " + mustGpus + "; a share "
                    + "of " + size + " (below " + MilliGpuId.SLOTS_PER_GPU + ") must stay on one GPU");
        }
        Map<Integer, Integer> freeByNuma = new TreeMap<>();
        for (GpuDevice gpu : gpus) {
            freeByNuma.merge(gpu.numaNode(), free.get(gpu.uuid()).cardinality(), Integer::sum);
        }
        GpuDevice best = gpus.stream()
                .filter(gpu -> free.get(gpu.uuid()).cardinality() >= size)
                .filter(gpu -> mustGpus.isEmpty() || mustGpus.contains(gpu.uuid()))
                .min(Comparator.<GpuDevice>comparingInt(gpu -> free.get(gpu.uuid()).cardinality())
                        .thenComparingInt(gpu -> freeByNuma.get(gpu.numaNode()))
                        .thenComparingInt(GpuDevice::index))
                .orElseThrow(() -> new LedgerException.NoFit("no single GPU has " + size
                        + " free milli among the candidates" + (mustGpus.isEmpty() ? "" : " on " + mustGpus)
                        + " (free per GPU: " + describeFree(gpus, free) + "); a share is never split across GPUs"));
        Set<Integer> slots = new LinkedHashSet<>();
        for (MilliGpuId id : mustInclude) {
            slots.add(id.slot());
        }
        BitSet bestFree = free.get(best.uuid());
        for (int slot = bestFree.nextSetBit(0); slot >= 0 && slots.size() < size; slot = bestFree.nextSetBit(slot + 1)) {
            slots.add(slot);
        }
        return slots.stream().map(slot -> new MilliGpuId(best.uuid(), slot)).sorted().toList();
    }

    private static List<MilliGpuId> wholeGpus(List<GpuDevice> gpus, Map<String, BitSet> free,
                                              Collection<MilliGpuId> mustInclude, int count) throws LedgerException {
        List<GpuDevice> wholeFree = gpus.stream()
                .filter(gpu -> free.get(gpu.uuid()).cardinality() == MilliGpuId.SLOTS_PER_GPU)
                .toList();
        Set<String> mustGpus = mustInclude.stream().map(MilliGpuId::uuid).collect(Collectors.toCollection(TreeSet::new));
        List<GpuDevice> chosen = new ArrayList<>();
        for (GpuDevice gpu : gpus) {
            if (mustGpus.contains(gpu.uuid())) {
                if (!wholeFree.contains(gpu)) {
                    throw new LedgerException.NoFit("must_include_deviceIDs name GPU " + gpu.uuid()
                            + ", which is not entirely free; " + count + " whole GPUs were requested");
                }
                chosen.add(gpu);
            }
        }
        if (chosen.size() > count) {
            throw new LedgerException.InvalidRequest("must_include_deviceIDs span " + chosen.size()
                    + " GPUs but only " + count + " whole GPUs were requested");
        }
        if (wholeFree.size() < count) {
            throw new LedgerException.NoFit(count + " entirely free GPUs requested, but only " + wholeFree.size()
                    + " among the candidates are (free per GPU: " + describeFree(gpus, free) + ")");
        }
        int missing = count - chosen.size();
        Map<Integer, List<GpuDevice>> byNuma = new TreeMap<>();
        for (GpuDevice gpu : wholeFree) {
            if (!chosen.contains(gpu)) {
                byNuma.computeIfAbsent(gpu.numaNode(), node -> new ArrayList<>()).add(gpu);
            }
        }
        Set<Integer> preferredNodes = chosen.stream().map(GpuDevice::numaNode).collect(Collectors.toSet());
        // One node that can supply everything: the required GPUs' node first, else the best fit.
        List<GpuDevice> sameNode = byNuma.entrySet().stream()
                .filter(e -> e.getValue().size() >= missing)
                .min(Comparator.<Map.Entry<Integer, List<GpuDevice>>>comparingInt(
                                e -> preferredNodes.contains(e.getKey()) ? 0 : 1)
                        .thenComparingInt(e -> e.getValue().size())
                        .thenComparingInt(Map.Entry::getKey))
                .map(Map.Entry::getValue)
                .orElse(null);
        if (sameNode != null) {
            chosen.addAll(sameNode.subList(0, missing));
        } else {
            List<List<GpuDevice>> nodes = new ArrayList<>(byNuma.values());
            nodes.sort(Comparator.<List<GpuDevice>>comparingInt(List::size).reversed());
            for (List<GpuDevice> node : nodes) {
                for (GpuDevice gpu : node) {
                    if (chosen.size() < count) {
                        chosen.add(gpu);
                    }
                }
            }
        }
        List<MilliGpuId> ids = new ArrayList<>(count * MilliGpuId.SLOTS_PER_GPU);
        for (GpuDevice gpu : chosen) {
            for (int slot = 0; slot < MilliGpuId.SLOTS_PER_GPU; slot++) {
                ids.add(new MilliGpuId(gpu.uuid(), slot));
            }
        }
        ids.sort(null);
        return ids;
    }

    private static String describeIds(List<String> ids) {
        return ids.size() <= 4 ? ids.toString() : ids.subList(0, 4) + " and " + (ids.size() - 4) + " more";
    }

    private static String describeFree(List<GpuDevice> gpus, Map<String, BitSet> free) {
        return gpus.stream().map(gpu -> gpu.uuid() + "=" + free.get(gpu.uuid()).cardinality())
                .collect(Collectors.joining(", "));
    }
}
