package io.omai.agent.quota.compute;

import io.omai.agent.quota.shm.AllocationFiles;

/**
 * One container's claim on one GPU, as the control loop needs it: its files and which device record of them
 * is this GPU. Quota and mode are read from the control file each tick, so live changes apply at once.
 *
 * @param frozen the allocation is frozen (its usage file was tampered with): it gets no more GPU time, but its
 *     heartbeat goes on, so its shims do not fall back to running on their own at their quota
 */
public record ComputeTarget(String allocationId, AllocationFiles files, int deviceIndex, boolean frozen) {
    public ComputeTarget(String allocationId, AllocationFiles files, int deviceIndex) {
        this(allocationId, files, deviceIndex, false);
    }
}
