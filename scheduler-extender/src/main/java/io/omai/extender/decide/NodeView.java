package io.omai.extender.decide;

import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.Device;
import io.omai.agent.schedapi.v1.Health;
import io.omai.agent.schedapi.v1.Reservation;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.GpuState;
import io.omai.placement.HcaState;
import io.omai.placement.NodeState;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * A watched {@code NodeState} as the placement model's input, built as the agent builds its own for Fit: each GPU
 * with allocations and reservations counted as used, each HCA with its free VFs. Built once per received state.
 *
 * @param proto the agent's message it was built from
 * @param node the placement input
 * @param gpus the agent's GPU messages by UUID (model, attributes, tags: what resource expressions see)
 * @param vfTotal VFs on the node, free or not
 */
record NodeView(
        io.omai.agent.schedapi.v1.NodeState proto,
        NodeState node,
        AntiAffinityPolicy policy,
        Map<String, io.omai.agent.schedapi.v1.GpuState> gpus,
        int vfTotal) {

    static NodeView of(io.omai.agent.schedapi.v1.NodeState proto, Optional<String> ignorePodUid) {
        Map<String, Integer> milliBack = new HashMap<>();
        Map<String, Long> memoryBack = new HashMap<>();
        Set<String> vfsBack = new LinkedHashSet<>();
        // a pod re-checked while it holds a reservation must not be refused by its own reservation (Fit's pod_uid)
        if (ignorePodUid.isPresent()) {
            for (Reservation reservation : proto.getReservationsList()) {
                if (reservation.getPodUid().equals(ignorePodUid.get())) {
                    for (ContainerAssignment assignment : reservation.getContainersList()) {
                        int milliEach = assignment.getGpuUuidsCount() == 0
                                ? 0
                                : assignment.getMilli() / Math.max(1, assignment.getGpuUuidsCount());
                        for (String uuid : assignment.getGpuUuidsList()) {
                            milliBack.merge(uuid, Math.min(milliEach, 1000), Integer::sum);
                            memoryBack.merge(uuid, assignment.getMemoryBytes(), Long::sum);
                        }
                        vfsBack.addAll(assignment.getVfIdsList());
                    }
                }
            }
        }
        var gpus = new ArrayList<GpuState>(proto.getGpusCount());
        var byUuid = new HashMap<String, io.omai.agent.schedapi.v1.GpuState>();
        for (var gpu : proto.getGpusList()) {
            byUuid.put(gpu.getUuid(), gpu);
            boolean healthy = gpu.getHealth() != Health.HEALTH_UNHEALTHY;
            gpus.add(new GpuState(
                    gpu.getUuid(),
                    gpu.getIndex(),
                    Math.max(-1, gpu.getNumaNode()),
                    "",
                    healthy,
                    healthy ? "" : gpu.getHealthReason(),
                    gpu.getMemoryBytes(),
                    Math.max(
                            0,
                            gpu.getMilliAllocated()
                                    + gpu.getMilliReserved()
                                    - milliBack.getOrDefault(gpu.getUuid(), 0)),
                    Math.max(
                            0,
                            gpu.getMemoryAllocatedBytes()
                                    + gpu.getMemoryReservedBytes()
                                    - memoryBack.getOrDefault(gpu.getUuid(), 0L)),
                    Set.copyOf(gpu.getTenantsList())));
        }
        var hcas = new ArrayList<HcaState>(proto.getHcasCount());
        int vfTotal = 0;
        for (var hca : proto.getHcasList()) {
            // the agent sends free VF ids in VF order; placement only ever takes free ones, in that order
            var free = hca.getFreeVfIdsList().stream()
                    .filter(vf -> !vfsBack.contains(vf))
                    .toList();
            hcas.add(new HcaState(hca.getName(), Math.max(-1, hca.getNumaNode()), free, Set.copyOf(free)));
            vfTotal += Math.max(hca.getVfsTotal(), free.size());
        }
        if (!vfsBack.isEmpty()) {
            // the pod's own reserved VFs are free for it again; the state does not say which HCA holds them
            hcas.add(new HcaState("(reserved by this pod)", -1, List.copyOf(vfsBack), vfsBack));
        }
        return new NodeView(proto, new NodeState(proto.getNodeName(), gpus, hcas), policy(proto), byUuid, vfTotal);
    }

    static AntiAffinityPolicy policy(io.omai.agent.schedapi.v1.NodeState proto) {
        return switch (proto.getAntiAffinity()) {
            case ANTI_AFFINITY_NODE -> AntiAffinityPolicy.NODE;
            case ANTI_AFFINITY_NONE -> AntiAffinityPolicy.NONE;
            default -> AntiAffinityPolicy.GPU;
        };
    }

    /**
     * This node with nothing allocated or reserved but every tenant still where it is: what preemption could
     * at best achieve. A pod that does not fit even here cannot be helped by evicting pods (a shape the node
     * cannot hold, unhealthy GPUs, a selector no GPU meets, another tenant's GPUs).
     */
    NodeState capacityCleared() {
        var gpus = node.gpus().stream()
                .map(gpu -> new GpuState(
                        gpu.uuid(),
                        gpu.index(),
                        gpu.numaNode(),
                        gpu.pciAddress(),
                        gpu.healthy(),
                        gpu.healthReason(),
                        gpu.memoryBytes(),
                        0,
                        0,
                        gpu.tenants()))
                .toList();
        var hcas = new ArrayList<HcaState>();
        int placeholder = 0;
        for (var hca : node.hcas()) {
            hcas.add(hca);
            placeholder += hca.vfIds().size();
        }
        // VFs in use are not named in the state; stand-ins make the count right for this what-if only
        var standIns = new ArrayList<String>();
        for (int i = placeholder; i < vfTotal; i++) {
            standIns.add("(in use " + i + ")");
        }
        if (!standIns.isEmpty()) {
            hcas.add(new HcaState("(in use)", -1, standIns, Set.copyOf(standIns)));
        }
        return new NodeState(node.nodeName(), gpus, hcas);
    }

    /** What a resource expression sees for {@code gpu}, exactly as the agent builds it. */
    Device device(GpuState gpu) {
        var proto = gpus.get(gpu.uuid());
        return Device.newBuilder()
                .setUuid(proto.getUuid())
                .setIndex(proto.getIndex())
                .setModel(proto.getModel())
                .setMemory(proto.getMemoryBytes())
                .setClass_(proto.getAttributesOrDefault("class", ""))
                .setNuma(proto.getNumaNode())
                .addAllTags(proto.getTagsList().stream().sorted().toList())
                .setMilliCapacity(proto.getMilliCapacity())
                .setMilliFree(gpu.milliFree())
                .setMemoryFree(gpu.memoryFreeBytes())
                .putAllAttributes(proto.getAttributesMap())
                .build();
    }
}
