package io.omai.agent.quota.shm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.StructLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The shared-memory layout of {@code native/cuda-intercept/include/omai_shm.h}, mirrored for the FFM API.
 *
 * <p>Field names are the C names so that {@code ShmLayoutMatchesCHeaderTest} can check every offset and size
 * against a probe compiled from the header. Nothing else in the agent computes an offset by hand: callers ask
 * {@link #offset} with the same names.
 */
public final class ShmLayout {
    private ShmLayout() {}

    static {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new ExceptionInInitializerError(
                    "the OMAI shared-memory ABI is little-endian; this JVM runs " + ByteOrder.nativeOrder());
        }
    }

    public static final int ABI_VERSION = 1;
    /** "OMAICTL1" as a little-endian u64. */
    public static final long CONTROL_MAGIC = 0x314C544349414D4FL;
    /** "OMAIUSG1" as a little-endian u64. */
    public static final long USAGE_MAGIC = 0x3147535549414D4FL;

    public static final int MAX_DEVICES = 16;
    public static final int MAX_SLOTS = 128;
    public static final int UUID_LEN = 64;
    public static final int LABEL_LEN = 128;
    /** {@code launch_cost_ns} the shim charges while the agent has no estimate yet. */
    public static final long DEFAULT_LAUNCH_COST_NS = 100_000L;
    /** {@code memory_limit_bytes} meaning "no limit" (UINT64_MAX). */
    public static final long MEMORY_UNLIMITED = -1L;

    public static final int COMPUTE_MODE_HARD_CAP = 1;
    public static final int COMPUTE_MODE_WORK_CONSERVING = 2;
    public static final int CONTROL_FLAG_COMPUTE_ENFORCED = 0x1;
    public static final int SLOT_FREE = 0;
    public static final int SLOT_CLAIMED = 1;
    public static final int SLOT_ACTIVE = 2;
    public static final int SLOT_RECLAIM = 3;

    public static final StructLayout CONTROL_HEADER = MemoryLayout.structLayout(
                    JAVA_LONG.withName("magic"),
                    JAVA_INT.withName("abi_version"),
                    JAVA_INT.withName("header_size"),
                    JAVA_INT.withName("device_record_size"),
                    JAVA_INT.withName("device_count"),
                    JAVA_LONG.withName("epoch"),
                    JAVA_LONG.withName("heartbeat_ns"),
                    JAVA_INT.withName("flags"),
                    JAVA_INT.withName("compute_period_us"),
                    JAVA_LONG.withName("created_ns"),
                    JAVA_LONG.withName("reserved0"),
                    MemoryLayout.sequenceLayout(LABEL_LEN, JAVA_BYTE).withName("label"))
            .withName("omai_control_header");

    public static final StructLayout CONTROL_DEVICE = MemoryLayout.structLayout(
                    JAVA_LONG.withName("memory_limit_bytes"),
                    JAVA_LONG.withName("token_grant_ns"),
                    JAVA_INT.withName("compute_quota_milli"),
                    JAVA_INT.withName("compute_mode"),
                    JAVA_INT.withName("host_index"),
                    JAVA_INT.withName("reserved0"),
                    JAVA_LONG.withName("launch_cost_ns"),
                    JAVA_LONG.withName("reserved1"),
                    JAVA_LONG.withName("reserved2"),
                    JAVA_LONG.withName("reserved3"),
                    MemoryLayout.sequenceLayout(UUID_LEN, JAVA_BYTE).withName("uuid"))
            .withName("omai_control_device");

    public static final StructLayout CONTROL_FILE = MemoryLayout.structLayout(
                    CONTROL_HEADER.withName("header"),
                    MemoryLayout.sequenceLayout(MAX_DEVICES, CONTROL_DEVICE).withName("devices"))
            .withName("omai_control_file");

    public static final StructLayout USAGE_HEADER = MemoryLayout.structLayout(
                    JAVA_LONG.withName("magic"),
                    JAVA_INT.withName("abi_version"),
                    JAVA_INT.withName("header_size"),
                    JAVA_INT.withName("device_record_size"),
                    JAVA_INT.withName("slot_size"),
                    JAVA_INT.withName("device_count"),
                    JAVA_INT.withName("slot_count"),
                    JAVA_INT.withName("devices_offset"),
                    JAVA_INT.withName("slots_offset"),
                    JAVA_LONG.withName("reclaimed_slots"),
                    JAVA_LONG.withName("reclaimed_bytes"),
                    JAVA_LONG.withName("reserved0"))
            .withName("omai_usage_header");

    public static final StructLayout USAGE_DEVICE = MemoryLayout.structLayout(
                    JAVA_LONG.withName("bytes_reserved"),
                    JAVA_LONG.withName("bytes_peak"),
                    JAVA_LONG.withName("tokens_consumed_ns"),
                    JAVA_LONG.withName("launches"),
                    JAVA_LONG.withName("denied_allocs"),
                    JAVA_LONG.withName("throttled_ns"),
                    JAVA_LONG.withName("reserved0"),
                    JAVA_LONG.withName("reserved1"))
            .withName("omai_usage_device");

    public static final StructLayout USAGE_SLOT_DEVICE = MemoryLayout.structLayout(
                    JAVA_LONG.withName("bytes_in_use"),
                    JAVA_LONG.withName("tokens_consumed_ns"),
                    JAVA_LONG.withName("launches"),
                    JAVA_LONG.withName("denied_allocs"),
                    JAVA_LONG.withName("throttled_ns"),
                    JAVA_LONG.withName("reserved0"))
            .withName("omai_usage_slot_device");

    public static final StructLayout USAGE_SLOT = MemoryLayout.structLayout(
                    JAVA_INT.withName("pid"),
                    JAVA_INT.withName("state"),
                    JAVA_LONG.withName("start_time_ticks"),
                    JAVA_LONG.withName("pid_ns_inode"),
                    JAVA_INT.withName("host_pid"),
                    JAVA_INT.withName("reserved0"),
                    JAVA_LONG.withName("attached_ns"),
                    JAVA_LONG.withName("reserved1"),
                    JAVA_LONG.withName("reserved2"),
                    JAVA_LONG.withName("reserved3"),
                    MemoryLayout.sequenceLayout(MAX_DEVICES, USAGE_SLOT_DEVICE).withName("devices"))
            .withName("omai_usage_slot");

    public static final StructLayout USAGE_FILE = MemoryLayout.structLayout(
                    USAGE_HEADER.withName("header"),
                    MemoryLayout.sequenceLayout(MAX_DEVICES, USAGE_DEVICE).withName("devices"),
                    MemoryLayout.sequenceLayout(MAX_SLOTS, USAGE_SLOT).withName("slots"))
            .withName("omai_usage_file");

    public static final long USAGE_DEVICES_OFFSET = USAGE_FILE.byteOffset(PathElement.groupElement("devices"));
    public static final long USAGE_SLOTS_OFFSET = USAGE_FILE.byteOffset(PathElement.groupElement("slots"));

    /** Every layout by its C name, for the header probe test and for diagnostics. */
    public static final java.util.List<StructLayout> ALL = java.util.List.of(
            CONTROL_HEADER,
            CONTROL_DEVICE,
            CONTROL_FILE,
            USAGE_HEADER,
            USAGE_DEVICE,
            USAGE_SLOT_DEVICE,
            USAGE_SLOT,
            USAGE_FILE);

    /** Offset of a named field in a struct, e.g. {@code offset(CONTROL_HEADER, "epoch")}. */
    public static long offset(StructLayout struct, String field) {
        return struct.byteOffset(PathElement.groupElement(field));
    }

    /*
     * Access handles. Their coordinates are (MemorySegment, long offset): the offset always comes from
     * offset(...) above. Both are naturally aligned (8 and 4 bytes) in every struct, which the FFM runtime
     * requires for atomic access modes and checks on each call.
     */
    static final VarHandle LONG = JAVA_LONG.varHandle();
    static final VarHandle INT = JAVA_INT.varHandle();
}
