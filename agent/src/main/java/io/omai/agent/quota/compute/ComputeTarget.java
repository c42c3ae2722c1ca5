package io.omai.agent.quota.compute;

import io.omai.agent.quota.shm.AllocationFiles;

/**
 * One container's claim on one GPU, as the control loop needs it: its files and which device record of them
 * is this GPU. Quota and mode are read from the control file each tick, so live changes apply at once.
 */
public record ComputeTarget(String allocationId, AllocationFiles files, int deviceIndex) {}
