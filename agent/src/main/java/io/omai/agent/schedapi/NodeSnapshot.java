package io.omai.agent.schedapi;

import io.omai.agent.tenancy.NodeCapacity;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * An immutable, consistent picture of the node's GPUs and HCAs with their allocations (not reservations).
 *
 * @param generation the inventory's own change counter; grows on every change
 * @param allocations what running containers hold, per container per GPU; what the GPUs' allocated totals are
 *     made of where the inventory knows (the static inventory of tests may list none)
 */
public record NodeSnapshot(
        String nodeName,
        long generation,
        List<GpuSnapshot> gpus,
        List<HcaSnapshot> hcas,
        List<ContainerHolding> allocations)
        implements NodeCapacity {
    /** A node whose allocations are known only as totals per GPU. */
    public NodeSnapshot(String nodeName, long generation, List<GpuSnapshot> gpus, List<HcaSnapshot> hcas) {
        this(nodeName, generation, gpus, hcas, List.of());
    }

    public NodeSnapshot {
        Objects.requireNonNull(nodeName, "nodeName");
        gpus = List.copyOf(gpus);
        hcas = List.copyOf(hcas);
        allocations = List.copyOf(allocations);
        var uuids = new HashSet<String>();
        for (GpuSnapshot gpu : gpus) {
            if (!uuids.add(gpu.uuid())) {
                throw new IllegalArgumentException("node " + nodeName + ": GPU " + gpu.uuid() + " listed twice");
            }
        }
        var vfs = new HashSet<String>();
        for (HcaSnapshot hca : hcas) {
            for (String vf : hca.vfIds()) {
                if (!vfs.add(vf)) {
                    throw new IllegalArgumentException("node " + nodeName + ": VF " + vf + " listed twice");
                }
            }
        }
    }

    @Override
    public Set<String> vfIds() {
        var all = new LinkedHashSet<String>();
        hcas.forEach(hca -> all.addAll(hca.vfIds()));
        return all;
    }

    @Override
    public Set<String> freeVfIds() {
        var free = new LinkedHashSet<String>();
        hcas.forEach(hca -> free.addAll(hca.freeVfIdsInOrder()));
        return free;
    }

    /** Tenants with GPU allocations on the node, sorted. */
    public Set<String> tenants() {
        var tenants = new TreeSet<String>();
        gpus.forEach(gpu -> tenants.addAll(gpu.tenants()));
        return tenants;
    }

    public NodeSnapshot withGpus(List<GpuSnapshot> gpusNow) {
        return new NodeSnapshot(nodeName, generation, gpusNow, hcas, allocations);
    }

    public NodeSnapshot withHcas(List<HcaSnapshot> hcasNow) {
        return new NodeSnapshot(nodeName, generation, gpus, hcasNow, allocations);
    }

    public NodeSnapshot withAllocations(List<ContainerHolding> allocationsNow) {
        return new NodeSnapshot(nodeName, generation, gpus, hcas, allocationsNow);
    }

    NodeSnapshot withGeneration(long generationNow) {
        return new NodeSnapshot(nodeName, generationNow, gpus, hcas, allocations);
    }
}
