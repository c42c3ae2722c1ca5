package io.omai.agent.tenancy;

import io.omai.placement.Bytes;
import io.omai.placement.GpuState;
import io.omai.placement.PlacementRules;
import java.util.Set;
import java.util.TreeSet;

/**
 * One GPU's load: the ledger's allocations ({@link GpuCapacity}) plus what reservations hold on it.
 *
 * @param tenants tenants with allocations or reservations on this GPU
 */
public record GpuUsage(GpuCapacity gpu, int milliReserved, long memoryReservedBytes, Set<String> tenants) {
    public GpuUsage {
        tenants = Set.copyOf(tenants);
    }

    static GpuUsage unreserved(GpuCapacity gpu) {
        return new GpuUsage(gpu, 0, 0, gpu.tenants());
    }

    public String uuid() {
        return gpu.uuid();
    }

    public int milliFree() {
        return gpu.milliCapacity() - gpu.milliAllocated() - milliReserved;
    }

    public long memoryFreeBytes() {
        return gpu.memoryBytes() - gpu.memoryAllocatedBytes() - memoryReservedBytes;
    }

    /** Nothing allocated or reserved: the GPU can be given whole. */
    public boolean untouched() {
        return gpu.milliAllocated() == 0
                && milliReserved == 0
                && gpu.memoryAllocatedBytes() == 0
                && memoryReservedBytes == 0;
    }

    /** The GPU's load in words, for refusals: milli and memory allocated, reserved and free, and its tenants. */
    public String describe() {
        return gpu.milliCapacity() + " milli: " + gpu.milliAllocated() + " allocated, " + milliReserved
                + " reserved, " + milliFree() + " free; memory " + Bytes.format(gpu.memoryBytes()) + ": "
                + Bytes.format(gpu.memoryAllocatedBytes()) + " allocated, " + Bytes.format(memoryReservedBytes)
                + " reserved, " + Bytes.format(memoryFreeBytes()) + " free; tenants " + tenants;
    }

    GpuUsage plus(String tenant, int milli, long memoryBytes) {
        var withTenant = new TreeSet<>(tenants);
        withTenant.add(tenant);
        return new GpuUsage(gpu, milliReserved + milli, memoryReservedBytes + memoryBytes, withTenant);
    }

    /** This GPU with its reservations counted as used, as the placement model reads it. */
    public GpuState state() {
        return new GpuState(
                gpu.uuid(),
                gpu.index(),
                gpu.numaNode(),
                "",
                gpu.healthy(),
                gpu.healthy() ? "" : "unhealthy",
                gpu.memoryBytes(),
                gpu.milliAllocated() + milliReserved,
                gpu.memoryAllocatedBytes() + memoryReservedBytes,
                tenants);
    }

    /**
     * Why {@code milli} and {@code memoryBytes} do not fit here (capacity only; health and tenants are checked
     * apart), or null when they fit: the placement model's {@link PlacementRules#capacityShortfall}.
     */
    public String capacityShortfall(int milli, long memoryBytes) {
        return PlacementRules.capacityShortfall(state(), milli, memoryBytes).orElse(null);
    }
}
