package io.omai.agent.quota.compute;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.gpu.nvml.NvmlLayouts;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.LongSupplier;

/**
 * {@link ProcessGpuTime} over NVML's {@code nvmlDeviceGetProcessUtilization}: once per GPU per control period, the
 * samples newer than the last one seen on that GPU.
 *
 * <p>Each sample reports the share ({@code smUtil}, percent) of the time since the previous sample of that process
 * during which its kernels occupied the GPU. A process's first sample in a window therefore covers the time since
 * the last timestamp seen, each later one the time since its predecessor: busy = smUtil/100 × covered time. (The
 * simulated NVML returns one aggregate sample per process at "now", which is the same rule with one sample.)
 * Timestamps are NVML's own (CPU time in µs); only the very first call of a GPU, which has none yet, starts from
 * the wall clock and reports nothing.
 *
 * <p>NVML must be initialised by the caller (the agent's {@code GpuInventory}). Not thread-safe beyond the
 * synchronisation here: one control loop calls it.
 */
public final class NvmlProcessGpuTime implements ProcessGpuTime {
    private static final long SAMPLE_SIZE = NvmlLayouts.NVML_PROCESS_UTILIZATION_SAMPLE.byteSize();
    private static final int MAX_SAMPLES = 1 << 16;

    private final NvmlLibrary nvml;
    private final LongSupplier wallClockMicros;

    @GuardedBy("this")
    private final Map<String, MemorySegment> handles = new HashMap<>();

    @GuardedBy("this")
    private final Map<String, Long> lastSeenMicros = new HashMap<>();

    @GuardedBy("this")
    private int capacity = 64;

    public NvmlProcessGpuTime(NvmlLibrary nvml) {
        this(nvml, () -> ChronoUnit.MICROS.between(Instant.EPOCH, Instant.now()));
    }

    NvmlProcessGpuTime(NvmlLibrary nvml, LongSupplier wallClockMicros) {
        this.nvml = Objects.requireNonNull(nvml, "nvml");
        this.wallClockMicros = Objects.requireNonNull(wallClockMicros, "wallClockMicros");
    }

    private record Sample(int pid, long timeStampMicros, int smUtil) {}

    @Override
    public synchronized Map<Integer, Long> busySinceLastSample(String gpuUuid) throws GpuTimeUnavailableException {
        MemorySegment device = handle(gpuUuid);
        Long last = lastSeenMicros.get(gpuUuid);
        if (last == null) {
            // No NVML timestamp of this GPU yet: start the first window now rather than at whatever NVML still
            // buffers (up to its whole history), which would bill old work to this period.
            lastSeenMicros.put(gpuUuid, wallClockMicros.getAsLong());
            return Map.of();
        }
        List<Sample> samples = query(gpuUuid, device, last);
        if (samples.isEmpty()) {
            // NVML_ERROR_NOT_FOUND: nothing ran. The window stays open from the same timestamp, so the next
            // samples' shares are of the whole time since, which is what they cover.
            return Map.of();
        }
        samples.sort(Comparator.comparingInt(Sample::pid).thenComparingLong(Sample::timeStampMicros));
        Map<Integer, Long> busy = new HashMap<>();
        long newest = last;
        long from = last;
        int pid = -1;
        for (Sample s : samples) {
            if (s.pid() != pid) {
                pid = s.pid();
                from = last;
            }
            if (s.timeStampMicros() <= from) {
                continue; // not newer than what was already counted
            }
            long coveredNs = (s.timeStampMicros() - from) * 1_000L;
            long util = Math.clamp(s.smUtil(), 0, 100);
            busy.merge(s.pid(), coveredNs / 100 * util + coveredNs % 100 * util / 100, Long::sum);
            from = s.timeStampMicros();
            newest = Math.max(newest, s.timeStampMicros());
        }
        lastSeenMicros.put(gpuUuid, newest);
        return busy;
    }

    @GuardedBy("this")
    private List<Sample> query(String gpuUuid, MemorySegment device, long lastSeen) throws GpuTimeUnavailableException {
        for (int attempt = 0; attempt < 4; attempt++) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment count = arena.allocate(JAVA_INT);
                count.set(JAVA_INT, 0, capacity);
                MemorySegment buffer = arena.allocate(NvmlLayouts.NVML_PROCESS_UTILIZATION_SAMPLE, capacity);
                int rc = nvml.nvmlDeviceGetProcessUtilization(device, buffer, count, lastSeen);
                if (rc == NvmlLibrary.NVML_ERROR_NOT_FOUND) {
                    return List.of();
                }
                if (rc == NvmlLibrary.NVML_ERROR_INSUFFICIENT_SIZE) {
                    // More processes than room: NVML says how many; leave some slack for newcomers.
                    capacity = Math.min(MAX_SAMPLES, Math.max(capacity * 2, count.get(JAVA_INT, 0) + 16));
                    continue;
                }
                if (rc != NvmlLibrary.NVML_SUCCESS) {
                    if (rc == NvmlLibrary.NVML_ERROR_GPU_IS_LOST || rc == NvmlLibrary.NVML_ERROR_INVALID_ARGUMENT) {
                        handles.remove(gpuUuid); // find it again next time
                    }
                    throw unavailable("nvmlDeviceGetProcessUtilization", gpuUuid, rc);
                }
                int n = Math.min(count.get(JAVA_INT, 0), capacity);
                List<Sample> samples = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    long at = i * SAMPLE_SIZE;
                    samples.add(new Sample(
                            buffer.get(JAVA_INT, at + NvmlLayouts.SAMPLE_PID_OFFSET),
                            buffer.get(JAVA_LONG, at + NvmlLayouts.SAMPLE_TIMESTAMP_OFFSET),
                            buffer.get(JAVA_INT, at + NvmlLayouts.SAMPLE_SM_UTIL_OFFSET)));
                }
                return samples;
            }
        }
        throw new GpuTimeUnavailableException("nvmlDeviceGetProcessUtilization on " + gpuUuid
                + " kept asking for a larger buffer (now " + capacity + " samples)");
    }

    /** The NVML handle of a GPU by UUID, found by walking NVML's devices once and cached. */
    @GuardedBy("this")
    private MemorySegment handle(String gpuUuid) throws GpuTimeUnavailableException {
        MemorySegment cached = handles.get(gpuUuid);
        if (cached != null) {
            return cached;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(JAVA_INT);
            int rc = nvml.nvmlDeviceGetCount_v2(count);
            if (rc != NvmlLibrary.NVML_SUCCESS) {
                throw unavailable("nvmlDeviceGetCount_v2", gpuUuid, rc);
            }
            MemorySegment handleOut = arena.allocate(ADDRESS);
            MemorySegment uuid = arena.allocate(NvmlLibrary.NVML_DEVICE_UUID_V2_BUFFER_SIZE);
            for (int index = 0; index < count.get(JAVA_INT, 0); index++) {
                if (nvml.nvmlDeviceGetHandleByIndex_v2(index, handleOut) != NvmlLibrary.NVML_SUCCESS) {
                    continue;
                }
                MemorySegment device = handleOut.get(ADDRESS, 0);
                if (nvml.nvmlDeviceGetUUID(device, uuid, NvmlLibrary.NVML_DEVICE_UUID_V2_BUFFER_SIZE)
                        == NvmlLibrary.NVML_SUCCESS) {
                    handles.put(uuid.getString(0), device);
                }
            }
        }
        MemorySegment found = handles.get(gpuUuid);
        if (found == null) {
            throw new GpuTimeUnavailableException("NVML shows no GPU with UUID " + gpuUuid);
        }
        return found;
    }

    private GpuTimeUnavailableException unavailable(String function, String gpuUuid, int rc) {
        return new GpuTimeUnavailableException(
                function + " on " + gpuUuid + ": " + nvml.nvmlErrorString(rc) + " (nvmlReturn_t " + rc + ")");
    }
}
