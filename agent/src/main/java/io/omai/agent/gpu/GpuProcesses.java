package io.omai.agent.gpu;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.omai.agent.gpu.nvml.NvmlLayouts;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The compute processes NVML sees on a GPU ({@code nvmlDeviceGetComputeRunningProcesses_v3}), with the memory
 * each holds there: what the driver knows, whatever the processes report about themselves. Host pids.
 */
public final class GpuProcesses {
    /** NVML's "not available" for a process's memory. */
    public static final long MEMORY_NOT_AVAILABLE = -1L;

    private static final int FIRST_GUESS = 16;

    /** One process on the GPU; {@code usedBytes} is {@link #MEMORY_NOT_AVAILABLE} when NVML cannot tell. */
    public record GpuProcess(int hostPid, long usedBytes) {}

    private final NvmlLibrary nvml;

    public GpuProcesses(NvmlLibrary nvml) {
        this.nvml = nvml;
    }

    /** The processes on the GPU with this NVML index now. */
    public List<GpuProcess> running(GpuDevice gpu) throws NvmlException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handleOut = arena.allocate(ADDRESS);
            check(
                    "nvmlDeviceGetHandleByIndex_v2(" + gpu.index() + ")",
                    nvml.nvmlDeviceGetHandleByIndex_v2(gpu.index(), handleOut));
            MemorySegment handle = handleOut.get(ADDRESS, 0);
            MemorySegment count = arena.allocate(JAVA_INT);
            int capacity = FIRST_GUESS;
            for (int attempt = 0; attempt < 4; attempt++) {
                MemorySegment infos = arena.allocate(NvmlLayouts.NVML_PROCESS_INFO, capacity);
                count.set(JAVA_INT, 0, capacity);
                int rc = nvml.nvmlDeviceGetComputeRunningProcesses_v3(handle, count, infos);
                if (rc == NvmlLibrary.NVML_ERROR_INSUFFICIENT_SIZE) {
                    capacity = Math.max(capacity * 2, count.get(JAVA_INT, 0) + 8); // processes come and go
                    continue;
                }
                check("nvmlDeviceGetComputeRunningProcesses_v3(" + gpu.uuid() + ")", rc);
                int found = count.get(JAVA_INT, 0);
                List<GpuProcess> processes = new ArrayList<>(found);
                for (int i = 0; i < found; i++) {
                    long at = i * NvmlLayouts.NVML_PROCESS_INFO.byteSize();
                    int pid = infos.get(JAVA_INT, at + NvmlLayouts.PROCESS_INFO_PID_OFFSET);
                    long used = infos.get(JAVA_LONG, at + NvmlLayouts.PROCESS_INFO_USED_MEMORY_OFFSET);
                    processes.add(new GpuProcess(pid, used == -1L ? MEMORY_NOT_AVAILABLE : used));
                }
                return List.copyOf(processes);
            }
            throw new NvmlException(
                    "nvmlDeviceGetComputeRunningProcesses_v3(" + gpu.uuid() + ")",
                    NvmlLibrary.NVML_ERROR_INSUFFICIENT_SIZE,
                    "the process list kept growing");
        }
    }

    private void check(String function, int rc) throws NvmlException {
        if (rc != NvmlLibrary.NVML_SUCCESS) {
            throw new NvmlException(function, rc, nvml.nvmlErrorString(rc));
        }
    }
}
