package io.omai.agent.quota.shm;

import java.util.List;

/**
 * A copy of a usage file's counters. Counters are read one by one with acquire loads, so totals and slots may
 * be a few operations apart; each value is itself whole.
 */
public record UsageSnapshot(
        int deviceCount, List<DeviceTotals> devices, List<Slot> slots, long reclaimedSlots, long reclaimedBytes) {

    public UsageSnapshot {
        devices = List.copyOf(devices);
        slots = List.copyOf(slots);
    }

    /** Container-wide totals of one device. */
    public record DeviceTotals(
            long bytesReserved,
            long bytesPeak,
            long tokensConsumedNs,
            long launches,
            long deniedAllocs,
            long throttledNs) {}

    /** One process's counters on one device. */
    public record SlotDevice(
            long bytesInUse, long tokensConsumedNs, long launches, long deniedAllocs, long throttledNs) {}

    /**
     * A slot that is not free.
     *
     * @param pid the process id in the process's own pid namespace
     * @param startTimeTicks field 22 of /proc/pid/stat: with the pid, identifies the process despite pid reuse
     * @param pidNsInode inode of the process's pid namespace, 0 if unknown
     * @param hostPid the host pid once the agent mapped it, 0 if unknown
     */
    public record Slot(
            int index,
            int pid,
            int state,
            long startTimeTicks,
            long pidNsInode,
            int hostPid,
            long attachedNs,
            List<SlotDevice> devices) {
        public Slot {
            devices = List.copyOf(devices);
        }

        public long bytesInUse() {
            return devices.stream().mapToLong(SlotDevice::bytesInUse).sum();
        }
    }
}
