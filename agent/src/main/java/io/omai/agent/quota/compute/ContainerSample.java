package io.omai.agent.quota.compute;

import io.omai.agent.quota.shm.ComputeMode;

/**
 * What the controller knows about one container on one GPU at a tick. Counters are cumulative, as the usage file
 * keeps them; the controller takes the differences itself.
 *
 * @param allocationId stable identity of the allocation (its directory name)
 * @param quotaMilli the container's share of the GPU, 1..1000
 * @param mode hard cap or work-conserving
 * @param grantNs the cumulative grant currently in the control file
 * @param consumedNs cumulative tokens the shim charged (usage file)
 * @param launches cumulative kernel launches (usage file)
 * @param throttledNs cumulative time launches waited for tokens (usage file)
 * @param measuredGpuNs GPU busy time NVML attributes to the container's processes over the last period, or
 *     {@link #UNMEASURED} when its processes could not be matched (the controller then trusts the shim's charge)
 */
public record ContainerSample(
        String allocationId,
        int quotaMilli,
        ComputeMode mode,
        long grantNs,
        long consumedNs,
        long launches,
        long throttledNs,
        long measuredGpuNs) {

    public static final long UNMEASURED = -1;

    public ContainerSample {
        if (quotaMilli < 1 || quotaMilli > 1000) {
            throw new IllegalArgumentException("quota " + quotaMilli + " of " + allocationId + " is outside 1..1000");
        }
    }
}
