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
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

/**
 * A watched {@code NodeState} as the placement model's input, built as the agent builds its own for Fit: each GPU
 * with allocations and reservations counted as used, each HCA with its free VFs. Built once per received state.
 *
 * @param proto the agent's message it was built from
 * @param node the placement input
 * @param gpus the agent's GPU messages by UUID (model, attributes, tags: what resource expressions see)
 * @param vfTotal VFs on the node, free or not
 * @param verdicts verdicts already given on this state, by pod shape ({@link PodDemand#shape()})
 */
record NodeView(
        io.omai.agent.schedapi.v1.NodeState proto,
        NodeState node,
        AntiAffinityPolicy policy,
        Map<String, io.omai.agent.schedapi.v1.GpuState> gpus,
        int vfTotal,
        Map<String, Verdict> verdicts) {
    /** Shapes remembered per state; a state rarely outlives more than a few distinct jobs' pods. */
    private static final int SHAPES_PER_STATE = 64;

    /** The verdict for pods of {@code shape} on this state, decided by {@code decide} the first time. */
    Verdict verdictFor(String shape, Supplier<Verdict> decide) {
        Verdict known = verdicts.get(shape);
        if (known != null) {
            return known;
        }
        Verdict decided = decide.get();
        if (verdicts.size() >= SHAPES_PER_STATE) {
            verdicts.clear();
        }
        verdicts.put(shape, decided);
        return decided;
    }

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
        Set<String> placedBack = new HashSet<>();
        int vfTotal = 0;
        for (var hca : proto.getHcasList()) {
            // the agent sends free VF ids in VF order; placement only ever takes free ones, in that order. The
            // pod's own reserved VFs are free for it again: they go back to the HCA on their PCI bus, in address
            // order (how the VF manager lists a PF's VFs)
            var free = new ArrayList<>(hca.getFreeVfIdsList());
            for (String vf : vfsBack) {
                if (!free.contains(vf) && sameBus(vf, hca.getPciAddress())) {
                    free.add(vf);
                    placedBack.add(vf);
                }
            }
            if (free.size() > hca.getFreeVfIdsCount()) {
                free.sort(null);
            }
            hcas.add(new HcaState(
                    hca.getName(), Math.max(-1, hca.getNumaNode()), free, Set.copyOf(free), hca.getResourceName()));
            vfTotal += Math.max(hca.getVfsTotal(), free.size());
        }
        var unplaced = vfsBack.stream().filter(vf -> !placedBack.contains(vf)).toList();
        if (!unplaced.isEmpty()) {
            // no HCA on their bus: free for the pod all the same, NUMA unknown
            hcas.add(new HcaState("(reserved by this pod)", -1, unplaced, Set.copyOf(unplaced)));
        }
        return new NodeView(
                proto,
                new NodeState(proto.getNodeName(), gpus, hcas),
                policy(proto),
                byUuid,
                vfTotal,
                new ConcurrentHashMap<>());
    }

    /** Whether two PCI addresses (domain:bus:device.function) are on one bus. */
    private static boolean sameBus(String a, String b) {
        int busEnd = a.lastIndexOf(':');
        return busEnd > 0 && b.length() > busEnd && a.regionMatches(0, b, 0, busEnd + 1);
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
        var hcas = new ArrayList<HcaState>(node.hcas());
        // VFs in use are not named in the state; per HCA, stand-ins (same NUMA node and resource) make the count
        // right for this what-if only
        for (var hca : proto.getHcasList()) {
            int known = node.hcas().stream()
                    .filter(h -> h.name().equals(hca.getName()))
                    .mapToInt(h -> h.vfIds().size())
                    .sum();
            var standIns = new ArrayList<String>();
            for (int i = known; i < hca.getVfsTotal(); i++) {
                standIns.add("(in use on " + hca.getName() + " #" + i + ")");
            }
            if (!standIns.isEmpty()) {
                hcas.add(new HcaState(
                        hca.getName() + " (in use)",
                        Math.max(-1, hca.getNumaNode()),
                        standIns,
                        Set.copyOf(standIns),
                        hca.getResourceName()));
            }
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
