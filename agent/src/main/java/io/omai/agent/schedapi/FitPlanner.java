package io.omai.agent.schedapi;

import io.omai.agent.schedapi.expr.ExpressionException;
import io.omai.agent.tenancy.AntiAffinityPolicy;
import io.omai.agent.tenancy.ContainerReservation;
import io.omai.agent.tenancy.GpuUsage;
import io.omai.agent.tenancy.MilliGpu;
import io.omai.agent.tenancy.NodeUsage;
import io.omai.agent.tenancy.Reservation;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * Decides whether a pod fits the node now and proposes where. Greedy, container by container in request order,
 * each seeing what the earlier ones took:
 * <ul>
 *   <li>a share goes to the eligible GPU with the least free milli that still holds it (best fit: keeps whole
 *       GPUs free for training jobs);</li>
 *   <li>k whole GPUs come from one NUMA node when one has k untouched eligible GPUs (the one with the fewest
 *       such, to keep larger groups intact), else the lowest indices;</li>
 *   <li>VFs prefer HCAs on the NUMA node of the container's first GPU.</li>
 * </ul>
 * A GPU is eligible when it is healthy, the anti-affinity policy admits the tenant, the expression holds and the
 * capacity (allocations plus reservations) suffices. When a container does not fit, the answer carries a reason
 * for every GPU that was not eligible and stops there.
 *
 * <p>Score (0..100): 90 × the mean fullness (milli used / capacity) of the chosen GPUs after placement (bin
 * packing, so schedulers fill partly used GPUs first) + 10 × the fraction of VF-using containers whose VFs share
 * the GPUs' NUMA node (10 when no container asks for VFs).
 */
final class FitPlanner {
    private FitPlanner() {}

    static FitResult plan(FitQuery query, NodeSnapshot snapshot, List<Reservation> reservations,
                          AntiAffinityPolicy policy) {
        NodeUsage usage = NodeUsage.of(snapshot, reservations);
        Map<String, GpuSnapshot> gpusByUuid = new HashMap<>();
        snapshot.gpus().forEach(gpu -> gpusByUuid.put(gpu.uuid(), gpu));
        Map<String, Integer> vfNuma = new HashMap<>();
        snapshot.hcas().forEach(hca -> hca.vfIds().forEach(vf -> vfNuma.put(vf, hca.numaNode())));

        var assignments = new ArrayList<ContainerReservation>();
        double fullnessSum = 0;
        int gpusChosen = 0;
        int vfContainers = 0;
        int vfContainersAligned = 0;
        for (ContainerNeed need : query.containers()) {
            var reasons = new ArrayList<FitResult.Reason>();
            List<GpuSnapshot> chosen = List.of();
            if (need.milli() > 0) {
                Optional<String> nodeRefusal = policy == AntiAffinityPolicy.NODE
                        ? policy.refusal(query.tenant(), "", Set.of(), usage.nodeName(), usage.nodeTenants())
                        : Optional.empty();
                if (nodeRefusal.isPresent()) {
                    return FitResult.infeasible(List.of(new FitResult.Reason(need.name(), "", nodeRefusal.get())));
                }
                List<GpuSnapshot> eligible = eligibleGpus(need, query.tenant(), snapshot, usage, policy, reasons);
                chosen = need.gpuCount() == 1 && MilliGpu.isShare(need.milli())
                        ? bestFitShare(eligible, usage)
                        : wholeGpus(eligible, need.gpuCount());
                if (chosen.isEmpty()) {
                    reasons.add(new FitResult.Reason(need.name(), "", need.gpuCount() == 1
                            ? "no GPU can take " + need.milli() + " milli"
                            : need.gpuCount() + " whole GPUs needed, " + eligible.size() + " eligible"));
                    return FitResult.infeasible(reasons);
                }
                for (GpuSnapshot gpu : chosen) {
                    usage.hold(query.tenant(), gpu.uuid(), MilliGpu.perGpu(need.milli()), need.memoryOn(gpu));
                    GpuUsage after = usage.gpu(gpu.uuid()).orElseThrow();
                    fullnessSum += (double) (gpu.milliCapacity() - after.milliFree()) / gpu.milliCapacity();
                    gpusChosen++;
                }
            }
            int gpuNuma = chosen.isEmpty() ? -1 : chosen.getFirst().numaNode();
            List<String> vfs = chooseVfs(need.vfs(), gpuNuma, usage, vfNuma);
            if (vfs.size() < need.vfs()) {
                return FitResult.infeasible(List.of(new FitResult.Reason(need.name(), "", need.vfs()
                        + " VF(s) needed, " + usage.freeVfIds().size() + " free")));
            }
            vfs.forEach(usage::holdVf);
            if (need.vfs() > 0) {
                vfContainers++;
                if (gpuNuma < 0 || vfs.stream().allMatch(vf -> vfNuma.get(vf) == gpuNuma)) {
                    vfContainersAligned++;
                }
            }
            long memory = chosen.stream().mapToLong(need::memoryOn).min().orElse(0);
            assignments.add(new ContainerReservation(need.name(), chosen.stream().map(GpuSnapshot::uuid).toList(),
                    need.milli(), memory, vfs));
        }
        double packing = gpusChosen == 0 ? 0 : fullnessSum / gpusChosen;
        double alignment = vfContainers == 0 ? 1 : (double) vfContainersAligned / vfContainers;
        int score = (int) Math.round(90 * packing + 10 * alignment);
        return new FitResult(true, score, assignments, List.of());
    }

    private static List<GpuSnapshot> eligibleGpus(ContainerNeed need, String tenant, NodeSnapshot snapshot,
                                                NodeUsage usage, AntiAffinityPolicy policy,
                                                List<FitResult.Reason> reasons) {
        var eligible = new ArrayList<GpuSnapshot>();
        for (GpuSnapshot gpu : snapshot.gpus()) {
            GpuUsage load = usage.gpu(gpu.uuid()).orElseThrow();
            String why = whyNot(need, tenant, gpu, load, usage, policy);
            if (why == null) {
                eligible.add(gpu);
            } else {
                reasons.add(new FitResult.Reason(need.name(), gpu.uuid(), why));
            }
        }
        return eligible;
    }

    /** Cheapest checks first: the expression is evaluated only on GPUs that could take the container. */
    private static String whyNot(ContainerNeed need, String tenant, GpuSnapshot gpu, GpuUsage load, NodeUsage usage,
                                 AntiAffinityPolicy policy) {
        if (!gpu.healthy()) {
            return "unhealthy: " + gpu.health().reason();
        }
        Optional<String> refusal = policy.refusal(tenant, gpu.uuid(), load.tenants(), usage.nodeName(),
                usage.nodeTenants());
        if (refusal.isPresent()) {
            return refusal.get();
        }
        String shortfall = load.capacityShortfall(MilliGpu.perGpu(need.milli()), need.memoryOn(gpu));
        if (shortfall != null) {
            return shortfall;
        }
        if (need.selector().isPresent()) {
            try {
                if (!need.selector().get().test(DeviceViews.of(gpu, load))) {
                    return "expression is false: " + need.selector().get().text();
                }
            } catch (ExpressionException e) {
                return "expression failed: " + e.getMessage();
            }
        }
        return null;
    }

    private static List<GpuSnapshot> bestFitShare(List<GpuSnapshot> eligible, NodeUsage usage) {
        return eligible.stream()
                .min(Comparator.comparingInt((GpuSnapshot gpu) -> usage.gpu(gpu.uuid()).orElseThrow().milliFree())
                        .thenComparingInt(GpuSnapshot::index))
                .map(List::of)
                .orElse(List.of());
    }

    private static List<GpuSnapshot> wholeGpus(List<GpuSnapshot> eligible, int count) {
        if (eligible.size() < count) {
            return List.of();
        }
        Map<Integer, List<GpuSnapshot>> byNuma = eligible.stream()
                .collect(Collectors.groupingBy(GpuSnapshot::numaNode, TreeMap::new, Collectors.toList()));
        return byNuma.entrySet().stream()
                .filter(group -> group.getKey() >= 0 && group.getValue().size() >= count)
                .min(Comparator.comparingInt(group -> group.getValue().size()))
                .map(group -> group.getValue().subList(0, count))
                .orElse(eligible.subList(0, count));
    }

    private static List<String> chooseVfs(int count, int numa, NodeUsage usage, Map<String, Integer> vfNuma) {
        if (count == 0) {
            return List.of();
        }
        return usage.freeVfIds().stream()
                .sorted(Comparator.comparingInt((String vf) -> vfNuma.getOrDefault(vf, -1) == numa ? 0 : 1))
                .limit(count)
                .toList();
    }
}
