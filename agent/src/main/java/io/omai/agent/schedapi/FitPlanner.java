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
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
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
        NodeState node = nodeState(snapshot, NodeUsage.of(snapshot, reservations));
        Map<String, GpuSnapshot> gpusByUuid = new HashMap<>();
        snapshot.gpus().forEach(gpu -> gpusByUuid.put(gpu.uuid(), gpu));
        IdentityHashMap<ContainerDemand, ContainerNeed> needs = new IdentityHashMap<>();
        List<ContainerDemand> demands = new ArrayList<>(query.containers().size());
        for (ContainerNeed need : query.containers()) {
            ContainerDemand demand = new ContainerDemand(need.name(), need.milli(), need.memoryBytes(), need.vfs());
            needs.put(demand, need);
            demands.add(demand);
        }
        GpuCondition expression = (demand, gpu) -> whyNot(needs.get(demand), gpusByUuid.get(gpu.uuid()), gpu);
        Plan plan = Planner.plan(node, query.tenant(), demands, policy, expression);
        if (!plan.feasible()) {
            return FitResult.infeasible(plan.refusals().stream()
                    .map(r -> new FitResult.Reason(r.container(), r.gpuUuid(), r.message()))
                    .toList());
        }
        return new FitResult(
                true,
                plan.score(),
                plan.placements().stream()
                        .map(p -> new ContainerReservation(
                                p.container(), p.gpuUuids(), p.milli(), p.memoryBytes(), p.vfIds()))
                        .toList(),
                List.of());
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
                        hca.vfIds().stream().filter(freeVfs::contains).collect(Collectors.toSet())))
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
