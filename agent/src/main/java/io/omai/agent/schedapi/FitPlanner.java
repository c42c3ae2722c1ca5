package io.omai.agent.schedapi;

import io.omai.agent.schedapi.expr.ExpressionException;
import io.omai.agent.tenancy.ContainerReservation;
import io.omai.agent.tenancy.GpuUsage;
import io.omai.agent.tenancy.NodeUsage;
import io.omai.agent.tenancy.Reservation;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.ContainerDemand;
import io.omai.placement.GpuCondition;
import io.omai.placement.GpuState;
import io.omai.placement.HcaState;
import io.omai.placement.NodeState;
import io.omai.placement.Plan;
import io.omai.placement.Planner;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * Decides whether a pod fits the node now and proposes where: an adapter from the scheduler API's snapshot and
 * reservations to the placement model's {@link Planner} (docs/architecture.md "Placement model"), which a
 * scheduler extender runs on the same {@link NodeState} to get the same verdict. What stays here is what the
 * model leaves to callers: reservations counted as used, and the request's device expression as a
 * {@link GpuCondition} on the GPU as earlier containers left it.
 */
final class FitPlanner {
    private FitPlanner() {}

    static FitResult plan(
            FitQuery query, NodeSnapshot snapshot, List<Reservation> reservations, AntiAffinityPolicy policy) {
        NodeSnapshot withoutVictims = withoutPods(snapshot, query.ignorePodUids());
        NodeState node = nodeState(withoutVictims, NodeUsage.of(withoutVictims, reservations));
        Map<String, GpuSnapshot> gpusByUuid = new HashMap<>();
        withoutVictims.gpus().forEach(gpu -> gpusByUuid.put(gpu.uuid(), gpu));
        IdentityHashMap<ContainerDemand, ContainerNeed> needs = new IdentityHashMap<>();
        List<ContainerDemand> apps = new ArrayList<>();
        List<ContainerDemand> inits = new ArrayList<>();
        for (ContainerNeed need : query.containers()) {
            ContainerDemand demand =
                    new ContainerDemand(need.name(), need.milli(), need.memoryBytes(), need.vfs(), need.vfResource());
            needs.put(demand, need);
            (need.init() ? inits : apps).add(demand);
        }
        GpuCondition expression = (demand, gpu) -> whyNot(needs.get(demand), gpusByUuid.get(gpu.uuid()), gpu);
        // kube-scheduler's rule: the app containers run together, each init container alone before them, so the
        // pod needs max(largest init container, sum of app containers), not the sum of all
        Map<String, Plan.Placement> placed = new HashMap<>();
        int score = -1;
        List<List<ContainerDemand>> runs = new ArrayList<>();
        if (!apps.isEmpty()) {
            runs.add(apps);
        }
        inits.forEach(init -> runs.add(List.of(init)));
        for (List<ContainerDemand> run : runs) {
            Plan plan = Planner.plan(node, query.tenant(), run, policy, expression);
            if (!plan.feasible()) {
                return FitResult.infeasible(plan.refusals().stream()
                        .map(r -> new FitResult.Reason(r.container(), r.gpuUuid(), r.message()))
                        .toList());
            }
            plan.placements().forEach(p -> placed.put(p.container(), p));
            if (score < 0) {
                score = plan.score(); // the app containers' score; an init-only pod's first init container
            }
        }
        return new FitResult(
                true,
                score,
                query.containers().stream()
                        .map(need -> placed.get(need.name()))
                        .map(p -> new ContainerReservation(
                                p.container(), p.gpuUuids(), p.milli(), p.memoryBytes(), p.vfIds()))
                        .toList(),
                List.of());
    }

    /**
     * The node as it would be without {@code victims}: their allocations' milli and memory free again, their VFs
     * free, and a tenant gone from a GPU where none of its other pods remain there.
     */
    static NodeSnapshot withoutPods(NodeSnapshot snapshot, Set<String> victims) {
        if (victims.isEmpty()) {
            return snapshot;
        }
        Map<Boolean, List<ContainerHolding>> byVictim = snapshot.allocations().stream()
                .collect(Collectors.partitioningBy(held -> victims.contains(held.podUid())));
        List<ContainerHolding> gone = byVictim.get(true);
        if (gone.isEmpty()) {
            return snapshot;
        }
        List<ContainerHolding> staying = byVictim.get(false);
        List<GpuSnapshot> gpus = new ArrayList<>(snapshot.gpus().size());
        for (GpuSnapshot gpu : snapshot.gpus()) {
            int milliFreed = 0;
            long memoryFreed = 0;
            Set<String> victimTenants = new TreeSet<>();
            for (ContainerHolding held : gone) {
                if (held.gpuUuid().equals(gpu.uuid())) {
                    milliFreed += held.milli();
                    memoryFreed += held.memoryBytes();
                    victimTenants.add(held.tenant());
                }
            }
            if (milliFreed == 0 && memoryFreed == 0 && victimTenants.isEmpty()) {
                gpus.add(gpu);
                continue;
            }
            Set<String> tenants = new TreeSet<>(gpu.tenants());
            for (String tenant : victimTenants) {
                boolean othersRemain = staying.stream()
                        .anyMatch(held -> held.gpuUuid().equals(gpu.uuid())
                                && held.tenant().equals(tenant));
                if (!othersRemain) {
                    tenants.remove(tenant);
                }
            }
            gpus.add(gpu.withAllocation(
                    Math.max(0, gpu.milliAllocated() - milliFreed),
                    Math.max(0, gpu.memoryAllocatedBytes() - memoryFreed),
                    tenants));
        }
        Set<String> freedVfs = new HashSet<>();
        gone.forEach(held -> freedVfs.addAll(held.vfIds()));
        List<HcaSnapshot> hcas = snapshot.hcas().stream()
                .map(hca -> {
                    if (hca.resourceName().isEmpty() || hca.vfIds().stream().noneMatch(freedVfs::contains)) {
                        return hca;
                    }
                    Set<String> free = new HashSet<>(hca.freeVfIds());
                    hca.vfIds().stream().filter(freedVfs::contains).forEach(free::add);
                    return new HcaSnapshot(
                            hca.name(),
                            hca.pciAddress(),
                            hca.numaNode(),
                            hca.linkLayer(),
                            hca.vfIds(),
                            free,
                            hca.qosCapabilities(),
                            hca.pcieSwitch(),
                            hca.resourceName());
                })
                .toList();
        return snapshot.withGpus(gpus).withHcas(hcas).withAllocations(staying);
    }

    /**
     * The placement model's input: each GPU with its allocations and the counted reservations as used, each
     * HCA's VFs less those allocated or reserved.
     */
    static NodeState nodeState(NodeSnapshot snapshot, NodeUsage usage) {
        List<GpuState> gpus = new ArrayList<>(snapshot.gpus().size());
        for (GpuSnapshot gpu : snapshot.gpus()) {
            GpuUsage load = usage.gpu(gpu.uuid()).orElseThrow();
            gpus.add(new GpuState(
                    gpu.uuid(),
                    gpu.index(),
                    gpu.numaNode(),
                    "",
                    gpu.healthy(),
                    gpu.healthy() ? "" : gpu.health().reason(),
                    gpu.memoryBytes(),
                    gpu.milliAllocated() + load.milliReserved(),
                    gpu.memoryAllocatedBytes() + load.memoryReservedBytes(),
                    load.tenants()));
        }
        Set<String> freeVfs = usage.freeVfIds();
        List<HcaState> hcas = snapshot.hcas().stream()
                .map(hca -> new HcaState(
                        hca.name(),
                        hca.numaNode(),
                        hca.vfIds(),
                        hca.vfIds().stream().filter(freeVfs::contains).collect(Collectors.toSet()),
                        hca.resourceName()))
                .toList();
        return new NodeState(snapshot.nodeName(), gpus, hcas);
    }

    private static Optional<String> whyNot(ContainerNeed need, GpuSnapshot gpu, GpuState state) {
        if (need.selector().isEmpty()) {
            return Optional.empty();
        }
        try {
            return need.selector().get().test(DeviceViews.of(gpu, state))
                    ? Optional.empty()
                    : Optional.of(
                            "expression is false: " + need.selector().get().text());
        } catch (ExpressionException e) {
            return Optional.of("expression failed: " + e.getMessage());
        }
    }
}
