package io.omai.placement;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Decides whether a pod fits a node and where: greedy, container by container in demand order, each seeing what
 * the earlier ones took, by {@link PlacementRules}. A GPU is eligible for a container when it is healthy, the
 * {@link AntiAffinityPolicy} admits the tenant, its capacity suffices and the caller's {@link GpuCondition} holds.
 * When a container does not fit, the plan carries a reason for every GPU that was not eligible and stops there.
 *
 * <p>Score (0..100): 90 × the mean fullness (milli used / 1000) of the chosen GPUs after placement (bin packing,
 * so schedulers fill partly used GPUs first) + 10 × the fraction of VF-using containers whose VFs share the GPUs'
 * NUMA node (10 when no container asks for VFs).
 *
 * <p>Deterministic: the same node state, tenant, demand and policy give the same plan.
 */
public final class Planner {
    private Planner() {}

    public static Plan plan(
            NodeState node,
            String tenant,
            List<ContainerDemand> containers,
            AntiAffinityPolicy policy,
            GpuCondition condition) {
        NodeState state = node;
        Set<String> freeVfs = new LinkedHashSet<>();
        Map<String, Integer> vfNuma = new HashMap<>();
        for (HcaState hca : node.hcas()) {
            freeVfs.addAll(hca.freeVfIds());
            hca.vfIds().forEach(vf -> vfNuma.put(vf, hca.numaNode()));
        }
        var placements = new ArrayList<Plan.Placement>();
        double fullnessSum = 0;
        int gpusChosen = 0;
        int vfContainers = 0;
        int vfContainersAligned = 0;
        for (ContainerDemand container : containers) {
            List<GpuState> chosen = List.of();
            if (container.milli() > 0) {
                if (policy == AntiAffinityPolicy.NODE) {
                    Optional<String> refusal = policy.refusal(tenant, "", Set.of(), node.nodeName(), state.tenants());
                    if (refusal.isPresent()) {
                        return Plan.infeasible(List.of(new Plan.Refusal(container.name(), "", refusal.get())));
                    }
                }
                var refusals = new ArrayList<Plan.Refusal>();
                List<GpuState> eligible = new ArrayList<>();
                Set<String> nodeTenants = state.tenants();
                for (GpuState gpu : state.gpus()) {
                    Optional<String> why =
                            whyNot(container, tenant, gpu, node.nodeName(), nodeTenants, policy, condition);
                    if (why.isEmpty()) {
                        eligible.add(gpu);
                    } else {
                        refusals.add(new Plan.Refusal(container.name(), gpu.uuid(), why.get()));
                    }
                }
                chosen = MilliGpu.isShare(container.milli())
                        ? PlacementRules.shareTarget(eligible, state)
                                .map(List::of)
                                .orElse(List.of())
                        : PlacementRules.wholeGpus(eligible, container.gpuCount(), Set.of());
                if (chosen.isEmpty()) {
                    refusals.add(new Plan.Refusal(
                            container.name(),
                            "",
                            container.gpuCount() == 1
                                    ? "no GPU can take " + container.milli() + " milli"
                                    : container.gpuCount() + " whole GPUs needed, " + eligible.size() + " eligible"));
                    return Plan.infeasible(refusals);
                }
                for (GpuState gpu : chosen) {
                    GpuState after = gpu.plus(tenant, container.milliPerGpu(), container.memoryOn(gpu));
                    state = state.with(after);
                    fullnessSum += (double) after.milliUsed() / MilliGpu.PER_GPU;
                    gpusChosen++;
                }
            }
            int gpuNuma = chosen.isEmpty() ? -1 : chosen.getFirst().numaNode();
            List<HcaState> pool = vfPool(node.hcas(), container.vfResource());
            List<String> vfs = PlacementRules.vfs(pool, freeVfs, container.vfs(), gpuNuma);
            if (vfs.size() < container.vfs()) {
                long free = pool.stream()
                        .flatMap(hca -> hca.vfIds().stream())
                        .filter(freeVfs::contains)
                        .count();
                return Plan.infeasible(List.of(new Plan.Refusal(
                        container.name(),
                        "",
                        container.vfs() + " VF(s) needed, " + free + " free"
                                + (container.vfResource().isEmpty() ? "" : " as " + container.vfResource()))));
            }
            vfs.forEach(freeVfs::remove);
            if (container.vfs() > 0) {
                vfContainers++;
                if (gpuNuma < 0 || vfs.stream().allMatch(vf -> vfNuma.get(vf) == gpuNuma)) {
                    vfContainersAligned++;
                }
            }
            long memory = chosen.stream().mapToLong(container::memoryOn).min().orElse(0);
            placements.add(new Plan.Placement(
                    container.name(), chosen.stream().map(GpuState::uuid).toList(), container.milli(), memory, vfs));
        }
        double packing = gpusChosen == 0 ? 0 : fullnessSum / gpusChosen;
        double alignment = vfContainers == 0 ? 1 : (double) vfContainersAligned / vfContainers;
        int score = (int) Math.round(90 * packing + 10 * alignment);
        return new Plan(true, score, placements, List.of());
    }

    /** The HCAs a container may take VFs from: those offered as its VF resource, or all when it names none. */
    private static List<HcaState> vfPool(List<HcaState> hcas, String vfResource) {
        return vfResource.isEmpty()
                ? hcas
                : hcas.stream().filter(hca -> hca.resource().equals(vfResource)).toList();
    }

    /** Cheapest checks first: the caller's condition runs only on GPUs that could take the container. */
    private static Optional<String> whyNot(
            ContainerDemand container,
            String tenant,
            GpuState gpu,
            String nodeName,
            Set<String> nodeTenants,
            AntiAffinityPolicy policy,
            GpuCondition condition) {
        if (!gpu.healthy()) {
            return Optional.of("unhealthy: " + (gpu.healthReason().isEmpty() ? "unhealthy" : gpu.healthReason()));
        }
        Optional<String> refusal = policy.refusal(tenant, gpu.uuid(), gpu.tenants(), nodeName, nodeTenants);
        if (refusal.isPresent()) {
            return refusal;
        }
        Optional<String> shortfall =
                PlacementRules.capacityShortfall(gpu, container.milliPerGpu(), container.memoryOn(gpu));
        if (shortfall.isPresent()) {
            return shortfall;
        }
        return condition.refusal(container, gpu);
    }
}
