package io.omai.agent.tenancy;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * The node's load as placement sees it: allocations from the ledger plus outstanding reservations. A working
 * copy: placing containers one after the other adds to it, so containers of one pod see each other. Not
 * thread-safe; build one per decision.
 */
public final class NodeUsage {
    private final NodeCapacity capacity;
    private final Map<String, GpuUsage> gpus = new LinkedHashMap<>();
    private final Set<String> freeVfIds;
    private final Set<String> nodeTenants = new TreeSet<>();
    private final List<Reservation> reservations = new ArrayList<>();

    private NodeUsage(NodeCapacity capacity) {
        this.capacity = capacity;
        for (GpuCapacity gpu : capacity.gpus()) {
            gpus.put(gpu.uuid(), GpuUsage.unreserved(gpu));
            nodeTenants.addAll(gpu.tenants());
        }
        this.freeVfIds = new LinkedHashSet<>(capacity.freeVfIds());
    }

    public static NodeUsage of(NodeCapacity capacity, Collection<Reservation> reservations) {
        var usage = new NodeUsage(capacity);
        usage.reservations.addAll(reservations);
        for (Reservation reservation : reservations) {
            for (ContainerReservation container : reservation.containers()) {
                for (String uuid : container.gpuUuids()) {
                    // a reservation for a GPU that has since vanished holds nothing
                    if (usage.gpus.containsKey(uuid)) {
                        usage.hold(reservation.tenant(), uuid, container.milliPerGpu(), container.memoryBytes());
                    }
                }
                container.vfIds().forEach(usage.freeVfIds::remove);
            }
        }
        return usage;
    }

    public String nodeName() {
        return capacity.nodeName();
    }

    public Collection<GpuUsage> gpus() {
        return gpus.values();
    }

    public Optional<GpuUsage> gpu(String uuid) {
        return Optional.ofNullable(gpus.get(uuid));
    }

    /** Tenants holding GPU capacity anywhere on the node. */
    public Set<String> nodeTenants() {
        return nodeTenants;
    }

    /** The reservations holding capacity on this GPU. */
    public List<Reservation> reservationsOn(String gpuUuid) {
        return reservations.stream()
                .filter(r -> r.containers().stream().anyMatch(c -> c.gpuUuids().contains(gpuUuid)))
                .toList();
    }

    public boolean knowsVf(String vfId) {
        return capacity.vfIds().contains(vfId);
    }

    /** VFs neither allocated nor reserved, in the ledger's order. */
    public Set<String> freeVfIds() {
        return freeVfIds;
    }

    public void hold(String tenant, String gpuUuid, int milli, long memoryBytes) {
        GpuUsage current = gpus.get(gpuUuid);
        if (current == null) {
            throw new IllegalArgumentException("no GPU " + gpuUuid + " on node " + nodeName());
        }
        gpus.put(gpuUuid, current.plus(tenant, milli, memoryBytes));
        nodeTenants.add(tenant);
    }

    public void holdVf(String vfId) {
        freeVfIds.remove(vfId);
    }
}
