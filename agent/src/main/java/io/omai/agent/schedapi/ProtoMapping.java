package io.omai.agent.schedapi;

import com.google.protobuf.Timestamp;
import io.omai.agent.schedapi.v1.Allocation;
import io.omai.agent.schedapi.v1.AntiAffinity;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.FitReason;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.agent.schedapi.v1.GpuState;
import io.omai.agent.schedapi.v1.HcaState;
import io.omai.agent.schedapi.v1.Health;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.tenancy.ContainerReservation;
import io.omai.agent.tenancy.GpuUsage;
import io.omai.agent.tenancy.NodeUsage;
import io.omai.agent.tenancy.Reservation;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Instant;
import java.util.List;
import java.util.TreeSet;

/** Domain values to wire messages. One place, so the proto's field semantics are decided once. */
final class ProtoMapping {
    private ProtoMapping() {}

    static NodeState nodeState(
            NodeSnapshot snapshot,
            List<Reservation> reservations,
            AntiAffinityPolicy policy,
            long generation,
            String incarnation,
            String tenantLabel) {
        NodeUsage usage = NodeUsage.of(snapshot, reservations);
        var state = NodeState.newBuilder()
                .setNodeName(snapshot.nodeName())
                .setGeneration(generation)
                .setIncarnation(incarnation)
                .setAntiAffinity(antiAffinity(policy))
                .setTenantLabel(tenantLabel);
        for (GpuSnapshot gpu : snapshot.gpus()) {
            GpuUsage load = usage.gpu(gpu.uuid()).orElseThrow();
            state.addGpus(GpuState.newBuilder()
                    .setUuid(gpu.uuid())
                    .setIndex(gpu.index())
                    .setModel(gpu.model())
                    .setMemoryBytes(gpu.memoryBytes())
                    .setMilliCapacity(gpu.milliCapacity())
                    .setMilliAllocated(gpu.milliAllocated())
                    .setMemoryAllocatedBytes(gpu.memoryAllocatedBytes())
                    .setMilliReserved(load.milliReserved())
                    .setMemoryReservedBytes(load.memoryReservedBytes())
                    .setHealth(gpu.healthy() ? Health.HEALTH_HEALTHY : Health.HEALTH_UNHEALTHY)
                    .setHealthReason(gpu.health().reason())
                    .setNumaNode(gpu.numaNode())
                    .putAllAttributes(gpu.attributes())
                    .addAllTags(new TreeSet<>(gpu.tags()))
                    .addAllTenants(new TreeSet<>(load.tenants()))
                    .setPciAddress(gpu.pciAddress())
                    .setPcieSwitch(gpu.pcieSwitch()));
        }
        for (HcaSnapshot hca : snapshot.hcas()) {
            List<String> free = hca.freeVfIdsInOrder().stream()
                    .filter(usage.freeVfIds()::contains)
                    .toList();
            state.addHcas(HcaState.newBuilder()
                    .setName(hca.name())
                    .setPciAddress(hca.pciAddress())
                    .setNumaNode(hca.numaNode())
                    .setLinkLayer(hca.linkLayer())
                    .setVfsTotal(hca.vfIds().size())
                    .setVfsFree(free.size())
                    .addAllFreeVfIds(free)
                    .addAllQosCapabilities(hca.qosCapabilities())
                    .setPcieSwitch(hca.pcieSwitch())
                    .setResourceName(hca.resourceName()));
        }
        for (ContainerHolding held : snapshot.allocations()) {
            state.addAllocations(Allocation.newBuilder()
                    .setPodUid(held.podUid())
                    .setPodNamespace(held.podNamespace())
                    .setPodName(held.podName())
                    .setContainer(held.container())
                    .setTenant(held.tenant())
                    .setGpuUuid(held.gpuUuid())
                    .setMilli(held.milli())
                    .setMemoryBytes(held.memoryBytes())
                    .addAllVfIds(held.vfIds()));
        }
        state.addAllTenants(usage.nodeTenants());
        reservations.forEach(reservation -> state.addReservations(reservation(reservation)));
        return state.build();
    }

    static AntiAffinity antiAffinity(AntiAffinityPolicy policy) {
        return switch (policy) {
            case GPU -> AntiAffinity.ANTI_AFFINITY_GPU;
            case NODE -> AntiAffinity.ANTI_AFFINITY_NODE;
            case NONE -> AntiAffinity.ANTI_AFFINITY_NONE;
        };
    }

    static io.omai.agent.schedapi.v1.Reservation reservation(Reservation reservation) {
        var proto = io.omai.agent.schedapi.v1.Reservation.newBuilder()
                .setIdempotencyKey(reservation.idempotencyKey())
                .setPodUid(reservation.podUid())
                .setTenant(reservation.tenant())
                .setCreatedAt(timestamp(reservation.createdAt()))
                .setExpiresAt(timestamp(reservation.expiresAt()));
        reservation.containers().forEach(container -> proto.addContainers(assignment(container)));
        return proto.build();
    }

    static ContainerAssignment assignment(ContainerReservation container) {
        return ContainerAssignment.newBuilder()
                .setName(container.name())
                .addAllGpuUuids(container.gpuUuids())
                .setMilli(container.milli())
                .setMemoryBytes(container.memoryBytes())
                .addAllVfIds(container.vfIds())
                .build();
    }

    static FitResponse fitResponse(FitResult result, long generation) {
        var response = FitResponse.newBuilder()
                .setFeasible(result.feasible())
                .setScore(result.score())
                .setGeneration(generation);
        result.assignments().forEach(container -> response.addAssignments(assignment(container)));
        result.reasons()
                .forEach(reason -> response.addReasons(FitReason.newBuilder()
                        .setContainer(reason.container())
                        .setGpuUuid(reason.gpuUuid())
                        .setMessage(reason.message())));
        return response.build();
    }

    private static Timestamp timestamp(Instant instant) {
        return Timestamp.newBuilder()
                .setSeconds(instant.getEpochSecond())
                .setNanos(instant.getNano())
                .build();
    }
}
