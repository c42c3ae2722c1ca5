package io.omai.agent.quota.shm;

import static io.omai.agent.quota.shm.ShmLayout.INT;
import static io.omai.agent.quota.shm.ShmLayout.LONG;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_DEVICE;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_HEADER;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_SLOT;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_SLOT_DEVICE;
import static io.omai.agent.quota.shm.ShmLayout.offset;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * The usage file of one allocation: written by the shim in every process of the container, read by the agent.
 * The agent writes only when it reclaims the slot of a dead process ({@link #reclaim}) and when it maps a slot to
 * a host pid ({@link #setHostPid}).
 *
 * <p>Nothing in here is trusted for policy: the agent compares it with NVML (the audit). Everything in it is a
 * claim of a container that can write any byte of it and change its size at any moment: every access first
 * checks the file's size (a mapping of a truncated file faults) and turns a fault that still happens (a
 * truncation racing the check) into {@link DamagedRegionException}; {@link #verify} checks the header.
 */
public final class UsageRegion implements AutoCloseable {
    public static final long FILE_SIZE = ShmLayout.USAGE_FILE.byteSize();
    static final long HEADER_SIZE = USAGE_HEADER.byteSize();
    static final long DEVICE_SIZE = USAGE_DEVICE.byteSize();
    static final long SLOT_SIZE = USAGE_SLOT.byteSize();
    static final long SLOT_DEVICE_SIZE = USAGE_SLOT_DEVICE.byteSize();

    private static final long MAGIC = offset(USAGE_HEADER, "magic");
    private static final long ABI_VERSION = offset(USAGE_HEADER, "abi_version");
    private static final long HEADER_SIZE_FIELD = offset(USAGE_HEADER, "header_size");
    private static final long DEVICE_SIZE_FIELD = offset(USAGE_HEADER, "device_record_size");
    private static final long SLOT_SIZE_FIELD = offset(USAGE_HEADER, "slot_size");
    private static final long DEVICE_COUNT = offset(USAGE_HEADER, "device_count");
    private static final long SLOT_COUNT = offset(USAGE_HEADER, "slot_count");
    private static final long DEVICES_OFFSET = offset(USAGE_HEADER, "devices_offset");
    private static final long SLOTS_OFFSET = offset(USAGE_HEADER, "slots_offset");
    private static final long RECLAIMED_SLOTS = offset(USAGE_HEADER, "reclaimed_slots");
    private static final long RECLAIMED_BYTES = offset(USAGE_HEADER, "reclaimed_bytes");

    private static final long T_RESERVED = offset(USAGE_DEVICE, "bytes_reserved");
    private static final long T_PEAK = offset(USAGE_DEVICE, "bytes_peak");
    private static final long T_TOKENS = offset(USAGE_DEVICE, "tokens_consumed_ns");
    private static final long T_LAUNCHES = offset(USAGE_DEVICE, "launches");
    private static final long T_DENIED = offset(USAGE_DEVICE, "denied_allocs");
    private static final long T_THROTTLED = offset(USAGE_DEVICE, "throttled_ns");

    private static final long S_PID = offset(USAGE_SLOT, "pid");
    private static final long S_STATE = offset(USAGE_SLOT, "state");
    private static final long S_START = offset(USAGE_SLOT, "start_time_ticks");
    private static final long S_NS = offset(USAGE_SLOT, "pid_ns_inode");
    private static final long S_HOST_PID = offset(USAGE_SLOT, "host_pid");
    private static final long S_ATTACHED = offset(USAGE_SLOT, "attached_ns");
    private static final long S_DEVICES = offset(USAGE_SLOT, "devices");

    private static final long SD_BYTES = offset(USAGE_SLOT_DEVICE, "bytes_in_use");
    private static final long SD_TOKENS = offset(USAGE_SLOT_DEVICE, "tokens_consumed_ns");
    private static final long SD_LAUNCHES = offset(USAGE_SLOT_DEVICE, "launches");
    private static final long SD_DENIED = offset(USAGE_SLOT_DEVICE, "denied_allocs");
    private static final long SD_THROTTLED = offset(USAGE_SLOT_DEVICE, "throttled_ns");

    private final MappedFile file;
    private final MemorySegment seg;
    private final int deviceCount;

    private UsageRegion(MappedFile file) {
        this(file, (int) INT.get(file.segment(), DEVICE_COUNT));
    }

    private UsageRegion(MappedFile file, int deviceCount) {
        this.file = file;
        this.seg = file.segment();
        this.deviceCount = deviceCount;
    }

    /**
     * Opens the usage file of an allocation the agent made, for the agent, as claims: the whole ABI size is
     * mapped whatever the file holds now (a truncated file is extended with zeros) and nothing is validated here,
     * so a file its container damaged stays under the agent's eye: {@link #verify} reports what is wrong on
     * every pass instead of the allocation dropping out of reaping, grants and heartbeats.
     *
     * @param deviceCount the device count of the allocation's control file (the agent's own record)
     */
    public static UsageRegion openClaims(Path path, int deviceCount) throws IOException {
        if (deviceCount < 1 || deviceCount > ShmLayout.MAX_DEVICES) {
            throw new IllegalArgumentException(
                    "device count " + deviceCount + " is outside 1.." + ShmLayout.MAX_DEVICES);
        }
        return new UsageRegion(MappedFile.openSized(path, FILE_SIZE, "usage"), deviceCount);
    }

    /**
     * Creates the file atomically. Mode 0666: processes of the container may run as any uid and must be able to
     * claim a slot; the file is reachable only through this container's own bind mount.
     */
    public static UsageRegion create(Path path, int deviceCount) throws IOException {
        if (deviceCount < 1 || deviceCount > ShmLayout.MAX_DEVICES) {
            throw new IllegalArgumentException(
                    "device count " + deviceCount + " is outside 1.." + ShmLayout.MAX_DEVICES);
        }
        MappedFile file = MappedFile.create(path, FILE_SIZE, "rw-rw-rw-", seg -> {
            INT.set(seg, ABI_VERSION, ShmLayout.ABI_VERSION);
            INT.set(seg, HEADER_SIZE_FIELD, (int) HEADER_SIZE);
            INT.set(seg, DEVICE_SIZE_FIELD, (int) DEVICE_SIZE);
            INT.set(seg, SLOT_SIZE_FIELD, (int) SLOT_SIZE);
            INT.set(seg, DEVICE_COUNT, deviceCount);
            INT.set(seg, SLOT_COUNT, ShmLayout.MAX_SLOTS);
            INT.set(seg, DEVICES_OFFSET, (int) ShmLayout.USAGE_DEVICES_OFFSET);
            INT.set(seg, SLOTS_OFFSET, (int) ShmLayout.USAGE_SLOTS_OFFSET);
            LONG.setRelease(seg, MAGIC, ShmLayout.USAGE_MAGIC);
        });
        return new UsageRegion(file);
    }

    /** Opens an existing file for the agent's writes (reclaim, host pid) and validates it. */
    public static UsageRegion open(Path path) throws IOException {
        return openChecked(path, true);
    }

    /** Opens an existing file for reading only and validates it. */
    public static UsageRegion openReadOnly(Path path) throws IOException {
        return openChecked(path, false);
    }

    private static UsageRegion openChecked(Path path, boolean writable) throws IOException {
        return new UsageRegion(MappedFile.openChecked(path, writable, HEADER_SIZE, "usage", UsageRegion::validate));
    }

    private static void validate(MappedFile file) throws RegionFormatException {
        MemorySegment seg = file.segment();
        Path path = file.path();
        file.requireIdentity(ShmLayout.USAGE_MAGIC, "OMAIUSG1", "usage");
        file.requireField("header_size", HEADER_SIZE_FIELD, HEADER_SIZE);
        file.requireField("device_record_size", DEVICE_SIZE_FIELD, DEVICE_SIZE);
        file.requireField("slot_size", SLOT_SIZE_FIELD, SLOT_SIZE);
        file.requireField("slot_count", SLOT_COUNT, ShmLayout.MAX_SLOTS);
        file.requireField("devices_offset", DEVICES_OFFSET, ShmLayout.USAGE_DEVICES_OFFSET);
        file.requireField("slots_offset", SLOTS_OFFSET, ShmLayout.USAGE_SLOTS_OFFSET);
        int count = (int) INT.get(seg, DEVICE_COUNT);
        if (count < 1 || count > ShmLayout.MAX_DEVICES) {
            throw new RegionFormatException(
                    path,
                    RegionFormatException.Problem.BAD_FIELD,
                    "device_count is " + Integer.toUnsignedString(count) + ", expected 1.." + ShmLayout.MAX_DEVICES);
        }
        if (seg.byteSize() < FILE_SIZE) {
            throw new RegionFormatException(
                    path,
                    RegionFormatException.Problem.TRUNCATED,
                    "usage file is " + seg.byteSize() + " bytes, expected " + FILE_SIZE + " (header, "
                            + ShmLayout.MAX_DEVICES + " device totals, " + ShmLayout.MAX_SLOTS + " slots)");
        }
    }

    public Path path() {
        return file.path();
    }

    public int deviceCount() {
        return deviceCount;
    }

    private static long totalsAt(int device) {
        return ShmLayout.USAGE_DEVICES_OFFSET + device * DEVICE_SIZE;
    }

    private static long slotAt(int slot) {
        return ShmLayout.USAGE_SLOTS_OFFSET + slot * SLOT_SIZE;
    }

    private static long slotDeviceAt(int slot, int device) {
        return slotAt(slot) + S_DEVICES + device * SLOT_DEVICE_SIZE;
    }

    /**
     * Checks what can change after the file was opened: its size (a container may truncate it) and every header
     * field (it may overwrite them), against what the ABI and this mapping expect.
     *
     * @throws RegionFormatException naming the field, what it holds and what was expected
     */
    public void verify() throws RegionFormatException {
        requireWholeFile();
        try {
            validate(file);
            int count = (int) INT.getAcquire(seg, DEVICE_COUNT);
            if (count != deviceCount) {
                throw new RegionFormatException(
                        file.path(),
                        RegionFormatException.Problem.BAD_FIELD,
                        "device_count is " + Integer.toUnsignedString(count) + ", expected " + deviceCount
                                + " (the value when the agent opened it)");
            }
        } catch (InternalError e) {
            throw faulted(e);
        }
    }

    /** The file is still at least as long as the mapping needs; a mapping past the end faults (SIGBUS). */
    private void requireWholeFile() throws RegionFormatException {
        long size;
        try {
            size = Files.size(file.path());
        } catch (IOException e) {
            throw new RegionFormatException(
                    file.path(),
                    RegionFormatException.Problem.TRUNCATED,
                    "usage file cannot be measured (" + e + "); expected " + FILE_SIZE + " bytes");
        }
        if (size < FILE_SIZE) {
            throw new RegionFormatException(
                    file.path(),
                    RegionFormatException.Problem.TRUNCATED,
                    "usage file is " + size + " bytes, expected " + FILE_SIZE + ": it was truncated after it was"
                            + " created");
        }
    }

    private RegionFormatException faulted(InternalError e) {
        return new RegionFormatException(
                file.path(),
                RegionFormatException.Problem.TRUNCATED,
                "usage file faulted when read (" + e.getMessage() + "): it shrank under its mapping; expected "
                        + FILE_SIZE + " bytes");
    }

    /** Runs an access of the mapping after the size check, turning faults into {@link DamagedRegionException}. */
    private <T> T guarded(Supplier<T> access) {
        try {
            requireWholeFile();
            return access.get();
        } catch (RegionFormatException e) {
            throw new DamagedRegionException(e);
        } catch (InternalError e) {
            throw new DamagedRegionException(faulted(e));
        }
    }

    /**
     * Totals, every non-free slot and the reclaim counters.
     *
     * @throws DamagedRegionException when the file was truncated (before or during the read)
     */
    public UsageSnapshot read() {
        return guarded(this::readMapping);
    }

    /**
     * The container-wide totals of one device only, without the slots: what the compute loop checks each period
     * to see whether a container did anything at all.
     *
     * @throws DamagedRegionException when the file was truncated (before or during the read)
     * @throws IndexOutOfBoundsException when {@code device} is not one of this file's devices
     */
    public UsageSnapshot.DeviceTotals deviceTotals(int device) {
        if (device < 0 || device >= deviceCount) {
            throw new IndexOutOfBoundsException(
                    "device " + device + " of " + file.path() + "; expected 0.." + (deviceCount - 1));
        }
        return guarded(() -> {
            long t = totalsAt(device);
            return new UsageSnapshot.DeviceTotals(
                    (long) LONG.getAcquire(seg, t + T_RESERVED),
                    (long) LONG.getAcquire(seg, t + T_PEAK),
                    (long) LONG.getAcquire(seg, t + T_TOKENS),
                    (long) LONG.getAcquire(seg, t + T_LAUNCHES),
                    (long) LONG.getAcquire(seg, t + T_DENIED),
                    (long) LONG.getAcquire(seg, t + T_THROTTLED));
        });
    }

    private UsageSnapshot readMapping() {
        List<UsageSnapshot.DeviceTotals> totals = new ArrayList<>(deviceCount);
        for (int d = 0; d < deviceCount; d++) {
            long t = totalsAt(d);
            totals.add(new UsageSnapshot.DeviceTotals(
                    (long) LONG.getAcquire(seg, t + T_RESERVED),
                    (long) LONG.getAcquire(seg, t + T_PEAK),
                    (long) LONG.getAcquire(seg, t + T_TOKENS),
                    (long) LONG.getAcquire(seg, t + T_LAUNCHES),
                    (long) LONG.getAcquire(seg, t + T_DENIED),
                    (long) LONG.getAcquire(seg, t + T_THROTTLED)));
        }
        List<UsageSnapshot.Slot> slots = new ArrayList<>();
        for (int s = 0; s < ShmLayout.MAX_SLOTS; s++) {
            long at = slotAt(s);
            int pid = (int) INT.getAcquire(seg, at + S_PID);
            if (pid == 0) {
                continue;
            }
            List<UsageSnapshot.SlotDevice> devices = new ArrayList<>(deviceCount);
            for (int d = 0; d < deviceCount; d++) {
                long sd = slotDeviceAt(s, d);
                devices.add(new UsageSnapshot.SlotDevice(
                        (long) LONG.getAcquire(seg, sd + SD_BYTES),
                        (long) LONG.getAcquire(seg, sd + SD_TOKENS),
                        (long) LONG.getAcquire(seg, sd + SD_LAUNCHES),
                        (long) LONG.getAcquire(seg, sd + SD_DENIED),
                        (long) LONG.getAcquire(seg, sd + SD_THROTTLED)));
            }
            slots.add(new UsageSnapshot.Slot(
                    s,
                    pid,
                    (int) INT.getAcquire(seg, at + S_STATE),
                    (long) LONG.getAcquire(seg, at + S_START),
                    (long) LONG.getAcquire(seg, at + S_NS),
                    (int) INT.getAcquire(seg, at + S_HOST_PID),
                    (long) LONG.getAcquire(seg, at + S_ATTACHED),
                    devices));
        }
        return new UsageSnapshot(deviceCount, totals, slots, (long) LONG.getAcquire(seg, RECLAIMED_SLOTS), (long)
                LONG.getAcquire(seg, RECLAIMED_BYTES));
    }

    /** Records the host pid the agent mapped a slot to, so NVML's host pids can be matched to slots. */
    public void setHostPid(int slot, int expectedPid, int hostPid) {
        file.requireWritable("setHostPid");
        checkSlot(slot);
        long at = slotAt(slot);
        guarded(() -> {
            if ((int) INT.getAcquire(seg, at + S_PID) == expectedPid) {
                INT.setRelease(seg, at + S_HOST_PID, hostPid);
            }
            return null;
        });
    }

    /**
     * Releases the slot of a process that died: its bytes go back to the container's totals (saturating at 0),
     * its counters are cleared and the slot is freed for reuse. The slot is taken only if it still holds the
     * same process (pid and start time), by CAS on its state, so a racing claim or a second reclaim is harmless.
     *
     * <p>The slot's bytes are a claim: on each device at most what the total holds beyond the other slots'
     * bytes is returned, so a forged dead slot (say 2^63 bytes) cannot free what live processes hold.
     *
     * @return the bytes released, or -1 if the slot no longer held that process
     */
    public synchronized long reclaim(int slot, int expectedPid, long expectedStartTicks) {
        file.requireWritable("reclaim");
        checkSlot(slot);
        return guarded(() -> reclaimMapped(slot, expectedPid, expectedStartTicks));
    }

    private long reclaimMapped(int slot, int expectedPid, long expectedStartTicks) {
        long at = slotAt(slot);
        if ((int) INT.getAcquire(seg, at + S_PID) != expectedPid
                || (long) LONG.getAcquire(seg, at + S_START) != expectedStartTicks) {
            return -1;
        }
        int state = (int) INT.getAcquire(seg, at + S_STATE);
        if (state == ShmLayout.SLOT_FREE
                || state == ShmLayout.SLOT_RECLAIM
                || !INT.compareAndSet(seg, at + S_STATE, state, ShmLayout.SLOT_RECLAIM)) {
            return -1;
        }
        long released = 0;
        for (int d = 0; d < deviceCount; d++) {
            long sd = slotDeviceAt(slot, d);
            // Others first, total second: a racing allocation can only raise the bound, a racing free (slot
            // first, then total) only lower it, leaving the total too high (the safe direction).
            long others = otherSlotsBytes(slot, d);
            long total = (long) LONG.getAcquire(seg, totalsAt(d) + T_RESERVED);
            long bound = Long.compareUnsigned(total, others) > 0 ? total - others : 0L;
            long claimed = (long) LONG.getAcquire(seg, sd + SD_BYTES);
            long bytes = Long.compareUnsigned(claimed, bound) > 0 ? bound : claimed;
            released = saturatingAdd(released, bytes);
            saturatingSubtract(seg, totalsAt(d) + T_RESERVED, bytes);
            seg.asSlice(sd, SLOT_DEVICE_SIZE).fill((byte) 0);
        }
        LONG.setOpaque(seg, at + S_START, 0L);
        LONG.setOpaque(seg, at + S_NS, 0L);
        INT.setOpaque(seg, at + S_HOST_PID, 0);
        LONG.setOpaque(seg, at + S_ATTACHED, 0L);
        LONG.getAndAdd(seg, RECLAIMED_SLOTS, 1L);
        LONG.getAndAdd(seg, RECLAIMED_BYTES, released);
        INT.setRelease(seg, at + S_STATE, ShmLayout.SLOT_FREE);
        // Releasing the pid word last makes the slot claimable only once it is clean.
        INT.setRelease(seg, at + S_PID, 0);
        return released;
    }

    /**
     * Clears a device's reserved-bytes total when no slot is live. Crashes inside the shim's reserve/commit
     * window can only leave the total too high (the safe direction); with no process left it must be zero.
     *
     * @return the bytes that had leaked, 0 if none
     */
    public synchronized long resetLeakedTotals() {
        file.requireWritable("resetLeakedTotals");
        return guarded(this::resetLeakedMapped);
    }

    private long resetLeakedMapped() {
        for (int s = 0; s < ShmLayout.MAX_SLOTS; s++) {
            if ((int) INT.getAcquire(seg, slotAt(s) + S_PID) != 0) {
                return 0;
            }
        }
        long leaked = 0;
        for (int d = 0; d < deviceCount; d++) {
            long at = totalsAt(d) + T_RESERVED;
            long total = (long) LONG.getAcquire(seg, at);
            // CAS, not a plain store: a process that claimed a slot after the scan and still holds bytes has
            // moved the total, so the CAS fails and its reservation survives.
            if (total != 0 && LONG.compareAndSet(seg, at, total, 0L)) {
                leaked = saturatingAdd(leaked, total);
            }
        }
        return leaked;
    }

    /** The bytes every other claimed slot says it holds on {@code device} (saturating). */
    private long otherSlotsBytes(int slot, int device) {
        long sum = 0;
        for (int s = 0; s < ShmLayout.MAX_SLOTS; s++) {
            if (s != slot && (int) INT.getAcquire(seg, slotAt(s) + S_PID) != 0) {
                sum = saturatingAdd(sum, (long) LONG.getAcquire(seg, slotDeviceAt(s, device) + SD_BYTES));
            }
        }
        return sum;
    }

    private void checkSlot(int slot) {
        if (slot < 0 || slot >= ShmLayout.MAX_SLOTS) {
            throw new IndexOutOfBoundsException(
                    "slot " + slot + " of " + file.path() + "; expected 0.." + (ShmLayout.MAX_SLOTS - 1));
        }
    }

    /** {@code *at -= value}, stopping at zero, with unsigned comparison as in the C shim. */
    static void saturatingSubtract(MemorySegment seg, long at, long value) {
        while (true) {
            long current = (long) LONG.getAcquire(seg, at);
            long next = Long.compareUnsigned(current, value) > 0 ? current - value : 0L;
            if (LONG.compareAndSet(seg, at, current, next)) {
                return;
            }
        }
    }

    private static long saturatingAdd(long a, long b) {
        long sum = a + b;
        return Long.compareUnsigned(sum, a) < 0 ? -1L : sum;
    }

    @Override
    public void close() {
        file.close();
    }
}
