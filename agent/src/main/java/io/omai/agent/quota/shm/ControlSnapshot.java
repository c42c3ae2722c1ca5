package io.omai.agent.quota.shm;

import java.util.List;

/**
 * A consistent copy of a control file, taken under its seqlock.
 *
 * @param epoch the (even) epoch the copy was taken at
 * @param heartbeatNs the agent's CLOCK_MONOTONIC at its last heartbeat, 0 if none yet
 * @param createdNs CLOCK_REALTIME when the agent created the file
 */
public record ControlSnapshot(
        int abiVersion,
        long epoch,
        long heartbeatNs,
        int flags,
        int computePeriodUs,
        long createdNs,
        String label,
        List<Device> devices) {

    public ControlSnapshot {
        devices = List.copyOf(devices);
    }

    public boolean computeEnforced() {
        return (flags & ShmLayout.CONTROL_FLAG_COMPUTE_ENFORCED) != 0;
    }

    /**
     * One device record.
     *
     * @param mode {@code null} when the file holds a mode value no {@link ComputeMode} has
     * @param rawMode the stored value, kept so that {@code inspect} can show what was there
     * @param launchCostNs the agent's estimate of GPU time per launch, 0 while it has none
     */
    public record Device(
            int index,
            String uuid,
            int hostIndex,
            long memoryLimitBytes,
            int computeQuotaMilli,
            ComputeMode mode,
            int rawMode,
            long tokenGrantNs,
            long launchCostNs) {

        public boolean memoryUnlimited() {
            return memoryLimitBytes == ShmLayout.MEMORY_UNLIMITED;
        }
    }
}
