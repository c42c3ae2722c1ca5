package io.omai.placement;

import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * One physical GPU as placement sees it: identity, where it sits, its size and what is held on it (allocations,
 * and reservations where the caller counts them). Plain immutable data, so the agent (from its ledger) and a
 * scheduler extender (from the node state it watches) build equal inputs.
 *
 * @param index the driver's index; the last tie-break, so it must be unique on the node
 * @param numaNode -1 when unknown
 * @param pciAddress "" when unknown
 * @param healthReason why the GPU is unhealthy; "" when healthy
 * @param milliUsed milli held on it; more than {@link MilliGpu#PER_GPU} only through a caller's bug, and then
 *     nothing more fits
 * @param tenants tenants holding capacity on it
 */
public record GpuState(
        String uuid,
        int index,
        int numaNode,
        String pciAddress,
        boolean healthy,
        String healthReason,
        long memoryBytes,
        int milliUsed,
        long memoryUsedBytes,
        Set<String> tenants) {
    public GpuState {
        Objects.requireNonNull(uuid, "uuid");
        Objects.requireNonNull(pciAddress, "pciAddress");
        Objects.requireNonNull(healthReason, "healthReason");
        tenants = Set.copyOf(tenants);
        if (memoryBytes < 0 || milliUsed < 0 || memoryUsedBytes < 0) {
            throw new IllegalArgumentException("GPU " + uuid + ": memory " + memoryBytes + ", milli used " + milliUsed
                    + " and memory used " + memoryUsedBytes + " must not be negative");
        }
        if (numaNode < -1) {
            throw new IllegalArgumentException(
                    "GPU " + uuid + ": NUMA node " + numaNode + " is neither a node (0 or more) nor unknown (-1)");
        }
    }

    /** A healthy GPU with nothing on it. */
    public static GpuState idle(String uuid, int index, int numaNode, long memoryBytes) {
        return new GpuState(uuid, index, numaNode, "", true, "", memoryBytes, 0, 0, Set.of());
    }

    public int milliFree() {
        return MilliGpu.PER_GPU - milliUsed;
    }

    public long memoryFreeBytes() {
        return memoryBytes - memoryUsedBytes;
    }

    /** Nothing held: the GPU can be given whole. */
    public boolean untouched() {
        return milliUsed == 0 && memoryUsedBytes == 0;
    }

    public boolean numaKnown() {
        return numaNode >= 0;
    }

    /** This GPU with {@code milli} and {@code memory} more held by {@code tenant} ("" counts no tenant). */
    public GpuState plus(String tenant, int milli, long memory) {
        var withTenant = new TreeSet<>(tenants);
        if (!tenant.isEmpty()) {
            withTenant.add(tenant);
        }
        return new GpuState(
                uuid,
                index,
                numaNode,
                pciAddress,
                healthy,
                healthReason,
                memoryBytes,
                milliUsed + milli,
                memoryUsedBytes + memory,
                withTenant);
    }
}
