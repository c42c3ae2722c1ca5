package io.omai.agent.gpu;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import io.omai.agent.gpu.nvml.NvmlLayouts;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Discovers the node's GPUs through NVML and interprets NVML's return codes. NVML must already be initialised
 * ({@link #initialise}); the caller owns its lifetime.
 */
public final class GpuInventory {
    private final NvmlLibrary nvml;

    public GpuInventory(NvmlLibrary nvml) {
        this.nvml = nvml;
    }

    /** {@code nvmlInit_v2}, turned into an exception naming NVML's reason. */
    public void initialise() throws NvmlException {
        check("nvmlInit_v2", nvml.nvmlInit_v2());
    }

    /** Every GPU NVML sees, in NVML index order. */
    public List<GpuDevice> discover() throws NvmlException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(JAVA_INT);
            check("nvmlDeviceGetCount_v2", nvml.nvmlDeviceGetCount_v2(count));
            int gpus = count.get(JAVA_INT, 0);
            List<GpuDevice> devices = new ArrayList<>(gpus);
            Set<String> uuids = new HashSet<>();
            for (int index = 0; index < gpus; index++) {
                GpuDevice device = describe(arena, index);
                if (!uuids.add(device.uuid())) {
                    throw new NvmlException(
                            "nvmlDeviceGetUUID",
                            NvmlLibrary.NVML_ERROR_UNKNOWN,
                            "GPUs report the same UUID " + device.uuid());
                }
                devices.add(device);
            }
            return List.copyOf(devices);
        }
    }

    private GpuDevice describe(Arena arena, int index) throws NvmlException {
        MemorySegment handleOut = arena.allocate(ADDRESS);
        check("nvmlDeviceGetHandleByIndex_v2(" + index + ")", nvml.nvmlDeviceGetHandleByIndex_v2(index, handleOut));
        MemorySegment handle = handleOut.get(ADDRESS, 0);

        MemorySegment uuid = arena.allocate(NvmlLibrary.NVML_DEVICE_UUID_V2_BUFFER_SIZE);
        check(
                "nvmlDeviceGetUUID(" + index + ")",
                nvml.nvmlDeviceGetUUID(handle, uuid, NvmlLibrary.NVML_DEVICE_UUID_V2_BUFFER_SIZE));
        MemorySegment name = arena.allocate(NvmlLibrary.NVML_DEVICE_NAME_V2_BUFFER_SIZE);
        check(
                "nvmlDeviceGetName(" + index + ")",
                nvml.nvmlDeviceGetName(handle, name, NvmlLibrary.NVML_DEVICE_NAME_V2_BUFFER_SIZE));
        MemorySegment minor = arena.allocate(JAVA_INT);
        check("nvmlDeviceGetMinorNumber(" + index + ")", nvml.nvmlDeviceGetMinorNumber(handle, minor));
        MemorySegment memory = arena.allocate(NvmlLayouts.NVML_MEMORY);
        check("nvmlDeviceGetMemoryInfo(" + index + ")", nvml.nvmlDeviceGetMemoryInfo(handle, memory));
        MemorySegment numa = arena.allocate(JAVA_INT);
        int numaResult = nvml.nvmlDeviceGetNumaNodeId(handle, numa);
        int numaNode;
        if (numaResult == NvmlLibrary.NVML_SUCCESS) {
            numaNode = numa.get(JAVA_INT, 0);
        } else if (numaResult == NvmlLibrary.NVML_ERROR_NOT_SUPPORTED
                || numaResult == NvmlLibrary.NVML_ERROR_FUNCTION_NOT_FOUND) {
            numaNode = -1; // single-socket hosts and older drivers: no NUMA hint, not an error
        } else {
            throw exception("nvmlDeviceGetNumaNodeId(" + index + ")", numaResult);
        }
        return new GpuDevice(
                index,
                uuid.getString(0),
                name.getString(0),
                minor.get(JAVA_INT, 0),
                (long) NvmlLayouts.total$vh.get(memory, 0L),
                numaNode);
    }

    private void check(String function, int result) throws NvmlException {
        if (result != NvmlLibrary.NVML_SUCCESS) {
            throw exception(function, result);
        }
    }

    private NvmlException exception(String function, int result) {
        return new NvmlException(function, result, nvml.nvmlErrorString(result));
    }
}
