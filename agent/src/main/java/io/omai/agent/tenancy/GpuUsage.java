package io.omai.agent.tenancy;

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
        return gpu.milliAllocated() == 0 && milliReserved == 0 && gpu.memoryAllocatedBytes() == 0
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

    /**
     * Why {@code milli} and {@code memoryBytes} do not fit here (capacity only; health and tenants are checked
     * apart), or null when they fit.
     */
    public String capacityShortfall(int milli, long memoryBytes) {
        if (milli >= MilliGpu.PER_GPU && !untouched()) {
            return "a whole GPU was requested but " + (MilliGpu.PER_GPU - milliFree()) + " milli and "
                    + Bytes.format(gpu.memoryBytes() - memoryFreeBytes()) + " are in use";
        }
        if (milli > milliFree()) {
            return milli + " milli requested, " + milliFree() + " free";
        }
        if (memoryBytes > memoryFreeBytes()) {
            return Bytes.format(memoryBytes) + " of memory requested, " + Bytes.format(memoryFreeBytes()) + " free";
        }
        return null;
    }
}
