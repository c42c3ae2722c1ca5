package io.omai.agent.quota.shm;

import static io.omai.agent.quota.shm.ShmLayout.CONTROL_DEVICE;
import static io.omai.agent.quota.shm.ShmLayout.CONTROL_HEADER;
import static io.omai.agent.quota.shm.ShmLayout.INT;
import static io.omai.agent.quota.shm.ShmLayout.LONG;
import static io.omai.agent.quota.shm.ShmLayout.offset;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The control file of one allocation: written by the agent only, read by the shim through a read-only mount.
 *
 * <p>Limits, quotas, mode and label change under a seqlock on {@code epoch} (odd while writing), so the shim
 * either sees a whole update or retries. The compute grant and the heartbeat are single 64-bit words outside the
 * seqlock: the grant only grows and is published with a release store, the heartbeat likewise.
 *
 * <p>One writer per file: the seqlock assumes a single writer. The process that writes a control file holds its
 * allocation's {@link ControlWriterLock} (the running agent, or {@code omai set} while no agent runs); within it one
 * object owns each writable region and its writers are {@code synchronized} on it. Readers are lock-free.
 */
public final class ControlRegion implements AutoCloseable {
    public static final long FILE_SIZE = ShmLayout.CONTROL_FILE.byteSize();
    static final long HEADER_SIZE = CONTROL_HEADER.byteSize();
    static final long RECORD_SIZE = CONTROL_DEVICE.byteSize();

    private static final long MAGIC = offset(CONTROL_HEADER, "magic");
    private static final long ABI_VERSION = offset(CONTROL_HEADER, "abi_version");
    private static final long HEADER_SIZE_FIELD = offset(CONTROL_HEADER, "header_size");
    private static final long RECORD_SIZE_FIELD = offset(CONTROL_HEADER, "device_record_size");
    private static final long DEVICE_COUNT = offset(CONTROL_HEADER, "device_count");
    private static final long EPOCH = offset(CONTROL_HEADER, "epoch");
    private static final long HEARTBEAT = offset(CONTROL_HEADER, "heartbeat_ns");
    private static final long FLAGS = offset(CONTROL_HEADER, "flags");
    private static final long PERIOD = offset(CONTROL_HEADER, "compute_period_us");
    private static final long CREATED = offset(CONTROL_HEADER, "created_ns");
    private static final long LABEL = offset(CONTROL_HEADER, "label");
    private static final long DEVICES = offset(ShmLayout.CONTROL_FILE, "devices");

    private static final long D_LIMIT = offset(CONTROL_DEVICE, "memory_limit_bytes");
    private static final long D_GRANT = offset(CONTROL_DEVICE, "token_grant_ns");
    private static final long D_QUOTA = offset(CONTROL_DEVICE, "compute_quota_milli");
    private static final long D_MODE = offset(CONTROL_DEVICE, "compute_mode");
    private static final long D_HOST_INDEX = offset(CONTROL_DEVICE, "host_index");
    private static final long D_LAUNCH_COST = offset(CONTROL_DEVICE, "launch_cost_ns");
    private static final long D_UUID = offset(CONTROL_DEVICE, "uuid");

    /**
     * How long a reader keeps retrying a seqlock that stays odd before it calls the update torn. A live writer
     * holds it for microseconds; only a writer that died mid-update (or is stopped) holds it this long.
     */
    private static final long TORN_AFTER_NANOS = 1_000_000_000L;

    private final MappedFile file;
    private final MemorySegment seg;

    private ControlRegion(MappedFile file) {
        this.file = file;
        this.seg = file.segment();
    }

    /** Creates the file atomically with the given limits (mode 0644: the container may only read it). */
    public static ControlRegion create(Path path, AllocationSpec spec) throws IOException {
        long createdNs = java.time.Instant.now().toEpochMilli() * 1_000_000L;
        MappedFile file = MappedFile.create(path, FILE_SIZE, "rw-r--r--", seg -> {
            INT.set(seg, ABI_VERSION, ShmLayout.ABI_VERSION);
            INT.set(seg, HEADER_SIZE_FIELD, (int) HEADER_SIZE);
            INT.set(seg, RECORD_SIZE_FIELD, (int) RECORD_SIZE);
            LONG.set(seg, CREATED, createdNs);
            writeSpec(seg, spec);
            // The magic goes last: a file with a valid magic is a complete file.
            LONG.setRelease(seg, MAGIC, ShmLayout.CONTROL_MAGIC);
        });
        return new ControlRegion(file);
    }

    /**
     * Opens an existing file for writing and validates it. Opening changes nothing: a torn update is repaired only
     * by the holder of the writer lock ({@link #repairTornUpdate}), since another writer may be mid-update.
     */
    public static ControlRegion open(Path path) throws IOException {
        return openChecked(path, true);
    }

    /** Opens an existing file for reading only (inspect, the audit) and validates it. */
    public static ControlRegion openReadOnly(Path path) throws IOException {
        return openChecked(path, false);
    }

    private static ControlRegion openChecked(Path path, boolean writable) throws IOException {
        return new ControlRegion(
                MappedFile.openChecked(path, writable, HEADER_SIZE, "control", ControlRegion::validate));
    }

    private static void validate(MappedFile file) throws RegionFormatException {
        MemorySegment seg = file.segment();
        Path path = file.path();
        file.requireIdentity(ShmLayout.CONTROL_MAGIC, "OMAICTL1", "control");
        file.requireField("header_size", HEADER_SIZE_FIELD, HEADER_SIZE);
        file.requireField("device_record_size", RECORD_SIZE_FIELD, RECORD_SIZE);
        int count = (int) INT.get(seg, DEVICE_COUNT);
        if (count < 0 || count > ShmLayout.MAX_DEVICES) {
            throw new RegionFormatException(
                    path,
                    RegionFormatException.Problem.BAD_FIELD,
                    "device_count is " + Integer.toUnsignedString(count) + ", expected 0.." + ShmLayout.MAX_DEVICES);
        }
        long needed = HEADER_SIZE + (long) count * RECORD_SIZE;
        if (seg.byteSize() < needed) {
            throw new RegionFormatException(
                    path,
                    RegionFormatException.Problem.TRUNCATED,
                    "control file is " + seg.byteSize() + " bytes, expected at least " + needed + " for " + count
                            + " device records");
        }
    }

    /**
     * A writer that died mid-update leaves the epoch odd; the next owner finishes the update. Only the holder of
     * the allocation's {@link ControlWriterLock} may call this: with another writer alive, an odd epoch is its
     * update in progress, and closing it would let readers take a half-written spec as whole.
     *
     * @return whether the epoch was odd and has been closed
     */
    public synchronized boolean repairTornUpdate() {
        file.requireWritable("repairTornUpdate");
        long epoch = (long) LONG.getAcquire(seg, EPOCH);
        if ((epoch & 1) != 0) {
            LONG.setRelease(seg, EPOCH, epoch + 1);
            return true;
        }
        return false;
    }

    public Path path() {
        return file.path();
    }

    /** Replaces limits, quotas, mode and label as one seqlocked update. Grants of kept devices stay. */
    public synchronized void update(AllocationSpec spec) {
        file.requireWritable("update");
        long epoch = (long) LONG.getAcquire(seg, EPOCH);
        LONG.setOpaque(seg, EPOCH, epoch + 1);
        VarHandle.storeStoreFence();
        writeSpec(seg, spec);
        LONG.setRelease(seg, EPOCH, epoch + 2);
    }

    private static void writeSpec(MemorySegment seg, AllocationSpec spec) {
        List<DeviceQuota> devices = spec.devices();
        for (int i = 0; i < ShmLayout.MAX_DEVICES; i++) {
            long base = DEVICES + i * RECORD_SIZE;
            if (i < devices.size()) {
                DeviceQuota d = devices.get(i);
                String oldUuid = readString(seg, base + D_UUID, ShmLayout.UUID_LEN);
                if (!oldUuid.equals(d.uuid())) {
                    // A new device starts its grant at zero; a kept one keeps its monotonic grant.
                    LONG.setOpaque(seg, base + D_GRANT, 0L);
                    LONG.setOpaque(seg, base + D_LAUNCH_COST, 0L);
                }
                LONG.setOpaque(seg, base + D_LIMIT, d.memoryLimitBytes());
                INT.setOpaque(seg, base + D_QUOTA, d.computeQuotaMilli());
                INT.setOpaque(seg, base + D_MODE, d.mode().code());
                INT.setOpaque(seg, base + D_HOST_INDEX, d.hostIndex());
                writeString(seg, base + D_UUID, ShmLayout.UUID_LEN, d.uuid().getBytes(StandardCharsets.US_ASCII));
            } else {
                seg.asSlice(base, RECORD_SIZE).fill((byte) 0);
            }
        }
        INT.setOpaque(seg, DEVICE_COUNT, devices.size());
        INT.setOpaque(seg, FLAGS, spec.computeEnforced() ? ShmLayout.CONTROL_FLAG_COMPUTE_ENFORCED : 0);
        INT.setOpaque(seg, PERIOD, spec.computePeriodUs());
        writeString(seg, LABEL, ShmLayout.LABEL_LEN, spec.label().getBytes(StandardCharsets.UTF_8));
    }

    /** Publishes the agent's liveness (CLOCK_MONOTONIC ns). */
    public void heartbeat(long monotonicNanos) {
        file.requireWritable("heartbeat");
        LONG.setRelease(seg, HEARTBEAT, monotonicNanos);
    }

    /** Publishes the agent's liveness now. */
    public void heartbeat() {
        heartbeat(MonotonicClock.nanos());
    }

    /** The last published heartbeat (CLOCK_MONOTONIC ns, 0 before the first), one word without the seqlock. */
    public long heartbeatNs() {
        return (long) LONG.getAcquire(seg, HEARTBEAT);
    }

    /**
     * The seqlock's epoch: it changes with every {@link #update} (odd while one is under way) and never otherwise,
     * so a reader that saw the same even epoch before knows limits, quotas, mode and flags are as it read them.
     */
    public long epoch() {
        return (long) LONG.getAcquire(seg, EPOCH);
    }

    /** The cumulative GPU-time grant of device record {@code index}, in ns. */
    public long tokenGrant(int index) {
        checkIndex(index);
        return (long) LONG.getAcquire(seg, DEVICES + index * RECORD_SIZE + D_GRANT);
    }

    /**
     * Raises the cumulative grant of device record {@code index} by {@code deltaNs}. The grant never goes down:
     * the shim compares it with what the container consumed, and a lower value would read as a debt.
     */
    public synchronized long addTokenGrant(int index, long deltaNs) {
        file.requireWritable("addTokenGrant");
        checkIndex(index);
        if (deltaNs < 0) {
            throw new IllegalArgumentException("grant delta " + deltaNs + " ns is negative; grants only grow");
        }
        long at = DEVICES + index * RECORD_SIZE + D_GRANT;
        long next = (long) LONG.getAcquire(seg, at) + deltaNs;
        LONG.setRelease(seg, at, next);
        return next;
    }

    /**
     * Publishes the controller's estimate of the GPU time one launch of this container costs on device record
     * {@code index}; the shim charges it per launch. Outside the seqlock: one word, release store.
     */
    public void setLaunchCost(int index, long costNs) {
        file.requireWritable("setLaunchCost");
        checkIndex(index);
        if (costNs <= 0) {
            throw new IllegalArgumentException("launch cost " + costNs + " ns; expected > 0");
        }
        LONG.setRelease(seg, DEVICES + index * RECORD_SIZE + D_LAUNCH_COST, costNs);
    }

    private void checkIndex(int index) {
        if (index < 0 || index >= ShmLayout.MAX_DEVICES) {
            throw new IndexOutOfBoundsException(
                    "device record " + index + " of " + file.path() + "; expected 0.." + (ShmLayout.MAX_DEVICES - 1));
        }
    }

    /**
     * A consistent copy taken under the seqlock.
     *
     * @throws RegionFormatException {@code TORN_UPDATE} if the epoch stays odd (writer died mid-update) or the
     *     device count read under a stable epoch is out of range
     */
    // Thread.yield is deliberate: after 64 spins the writer (another process) is likely descheduled on a busy core
    @SuppressWarnings("ThreadPriorityCheck")
    public ControlSnapshot read() throws RegionFormatException {
        long deadline = System.nanoTime() + TORN_AFTER_NANOS;
        for (int attempt = 0; attempt < 64 || System.nanoTime() - deadline < 0; attempt++) {
            long before = (long) LONG.getAcquire(seg, EPOCH);
            if ((before & 1) != 0) {
                if (attempt < 64) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield(); // the writer may be descheduled; let it run
                }
                continue;
            }
            int count = (int) INT.getOpaque(seg, DEVICE_COUNT);
            int flags = (int) INT.getOpaque(seg, FLAGS);
            int period = (int) INT.getOpaque(seg, PERIOD);
            String label = readString(seg, LABEL, ShmLayout.LABEL_LEN);
            List<ControlSnapshot.Device> devices = new ArrayList<>();
            boolean countValid = count >= 0 && count <= ShmLayout.MAX_DEVICES;
            for (int i = 0; countValid && i < count; i++) {
                long base = DEVICES + i * RECORD_SIZE;
                int rawMode = (int) INT.getOpaque(seg, base + D_MODE);
                devices.add(new ControlSnapshot.Device(
                        i,
                        readString(seg, base + D_UUID, ShmLayout.UUID_LEN),
                        (int) INT.getOpaque(seg, base + D_HOST_INDEX),
                        (long) LONG.getOpaque(seg, base + D_LIMIT),
                        (int) INT.getOpaque(seg, base + D_QUOTA),
                        ComputeMode.ofCode(rawMode),
                        rawMode,
                        (long) LONG.getAcquire(seg, base + D_GRANT),
                        (long) LONG.getAcquire(seg, base + D_LAUNCH_COST)));
            }
            VarHandle.loadLoadFence();
            long after = (long) LONG.getOpaque(seg, EPOCH);
            if (before != after) {
                continue;
            }
            if (!countValid) {
                throw new RegionFormatException(
                        file.path(),
                        RegionFormatException.Problem.BAD_FIELD,
                        "device_count is " + count + ", expected 0.." + ShmLayout.MAX_DEVICES);
            }
            return new ControlSnapshot(
                    (int) INT.get(seg, ABI_VERSION),
                    before,
                    (long) LONG.getAcquire(seg, HEARTBEAT),
                    flags,
                    period,
                    (long) LONG.get(seg, CREATED),
                    label,
                    devices);
        }
        throw new RegionFormatException(
                file.path(),
                RegionFormatException.Problem.TORN_UPDATE,
                "epoch stayed odd (" + (long) LONG.getAcquire(seg, EPOCH)
                        + "): the agent stopped in the middle of an update; restarting it repairs the file");
    }

    static String readString(MemorySegment seg, long offset, int capacity) {
        byte[] bytes = seg.asSlice(offset, capacity).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        int end = 0;
        while (end < bytes.length && bytes[end] != 0) {
            end++;
        }
        return new String(bytes, 0, end, StandardCharsets.UTF_8);
    }

    private static void writeString(MemorySegment seg, long offset, int capacity, byte[] value) {
        MemorySegment field = seg.asSlice(offset, capacity);
        field.fill((byte) 0);
        MemorySegment.copy(MemorySegment.ofArray(value), 0, field, 0, Math.min(value.length, capacity - 1));
    }

    @Override
    public void close() {
        file.close();
    }
}
