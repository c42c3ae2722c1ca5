package io.omai.agent.gpu;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import io.omai.agent.gpu.nvml.NvmlLayouts;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * An {@link NvmlLibrary} in Java for unit tests: GPUs given up front, events injected by the test, failures
 * switched on per function. Behaves like NVML at the C boundary (writes through the pointers it is given).
 */
public final class FakeNvml implements NvmlLibrary {
    private final List<GpuDevice> gpus;
    private final List<MemorySegment> handles = new ArrayList<>();
    private final MemorySegment eventSet = Arena.global().allocate(8);
    private final BlockingQueue<long[]> events = new LinkedBlockingQueue<>();
    private final Set<Integer> lostGpus = ConcurrentHashMap.newKeySet();
    public volatile int eventSetCreateResult = NVML_SUCCESS;
    public volatile int initResult = NVML_SUCCESS;

    public FakeNvml(List<GpuDevice> gpus) {
        this.gpus = List.copyOf(gpus);
        for (int i = 0; i < gpus.size(); i++) {
            handles.add(Arena.global().allocate(8));
        }
    }

    /** {@code count} GPUs of {@code memoryBytes}, UUIDs GPU-fake-000i, NUMA node i / (count/2 or 1). */
    public static List<GpuDevice> gpus(int count, long memoryBytes, int gpusPerNumaNode) {
        List<GpuDevice> list = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            list.add(new GpuDevice(i, uuid(i), "Fake GPU", i, memoryBytes, i / gpusPerNumaNode));
        }
        return list;
    }

    public static String uuid(int index) {
        return String.format("GPU-fa4e0000-0000-4000-8000-%012d", index);
    }

    public void injectXid(int gpu, long xid) {
        events.add(new long[] {gpu, nvmlEventTypeXidCriticalError, xid});
    }

    public void loseGpu(int gpu) {
        lostGpus.add(gpu);
    }

    public void restoreGpu(int gpu) {
        lostGpus.remove(gpu);
    }

    private int index(MemorySegment device) {
        for (int i = 0; i < handles.size(); i++) {
            if (handles.get(i).address() == device.address()) {
                return i;
            }
        }
        return -1;
    }

    @Override
    public int nvmlInit_v2() {
        return initResult;
    }

    @Override
    public int nvmlShutdown() {
        return NVML_SUCCESS;
    }

    @Override
    public String nvmlErrorString(int result) {
        return switch (result) {
            case NVML_ERROR_GPU_IS_LOST -> "GPU is lost";
            case NVML_ERROR_TIMEOUT -> "Timeout";
            case NVML_ERROR_NOT_SUPPORTED -> "Not Supported";
            default -> "fake error " + result;
        };
    }

    @Override
    public int nvmlDeviceGetCount_v2(MemorySegment deviceCount) {
        deviceCount.set(JAVA_INT, 0, gpus.size());
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlDeviceGetHandleByIndex_v2(int index, MemorySegment device) {
        if (index < 0 || index >= gpus.size()) {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        device.set(ADDRESS, 0, handles.get(index));
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlDeviceGetUUID(MemorySegment device, MemorySegment uuid, int length) {
        uuid.setString(0, gpus.get(index(device)).uuid());
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlDeviceGetName(MemorySegment device, MemorySegment name, int length) {
        name.setString(0, gpus.get(index(device)).name());
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlDeviceGetIndex(MemorySegment device, MemorySegment index) {
        index.set(JAVA_INT, 0, index(device));
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlDeviceGetMinorNumber(MemorySegment device, MemorySegment minorNumber) {
        minorNumber.set(JAVA_INT, 0, gpus.get(index(device)).minorNumber());
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlDeviceGetMemoryInfo(MemorySegment device, MemorySegment memory) {
        int i = index(device);
        if (lostGpus.contains(i)) {
            return NVML_ERROR_GPU_IS_LOST;
        }
        NvmlLayouts.total$vh.set(memory, 0L, gpus.get(i).memoryBytes());
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlDeviceGetNumaNodeId(MemorySegment device, MemorySegment node) {
        int numa = gpus.get(index(device)).numaNode();
        if (numa < 0) {
            return NVML_ERROR_NOT_SUPPORTED;
        }
        node.set(JAVA_INT, 0, numa);
        return NVML_SUCCESS;
    }

    // Telemetry, as an idle data-centre card answers it (the simulator's defaults): only metrics read these.
    @Override
    public int nvmlDeviceGetUtilizationRates(MemorySegment device, MemorySegment utilization) {
        return telemetry(device, utilization, 0);
    }

    @Override
    public int nvmlDeviceGetTemperature(MemorySegment device, int sensorType, MemorySegment temp) {
        return sensorType == NVML_TEMPERATURE_GPU ? telemetry(device, temp, 45) : NVML_ERROR_INVALID_ARGUMENT;
    }

    @Override
    public int nvmlDeviceGetPowerUsage(MemorySegment device, MemorySegment power) {
        return telemetry(device, power, 70_000);
    }

    @Override
    public int nvmlDeviceGetClockInfo(MemorySegment device, int type, MemorySegment clock) {
        return telemetry(device, clock, type == NVML_CLOCK_MEM ? 1_593 : 1_410);
    }

    @Override
    public int nvmlDeviceGetTotalEccErrors(
            MemorySegment device, int errorType, int counterType, MemorySegment eccCounts) {
        int i = index(device);
        if (i < 0) {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        if (lostGpus.contains(i)) {
            return NVML_ERROR_GPU_IS_LOST;
        }
        eccCounts.set(java.lang.foreign.ValueLayout.JAVA_LONG, 0, 0L);
        return NVML_SUCCESS;
    }

    private int telemetry(MemorySegment device, MemorySegment out, int value) {
        int i = index(device);
        if (i < 0) {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        if (lostGpus.contains(i)) {
            return NVML_ERROR_GPU_IS_LOST;
        }
        out.set(JAVA_INT, 0, value);
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlEventSetCreate(MemorySegment set) {
        if (eventSetCreateResult != NVML_SUCCESS) {
            return eventSetCreateResult;
        }
        set.set(ADDRESS, 0, eventSet);
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlDeviceRegisterEvents(MemorySegment device, long eventTypes, MemorySegment set) {
        return NVML_SUCCESS;
    }

    @Override
    public int nvmlEventSetWait_v2(MemorySegment set, MemorySegment data, int timeoutms) {
        try {
            long[] event = events.poll(timeoutms, TimeUnit.MILLISECONDS);
            if (event == null) {
                return NVML_ERROR_TIMEOUT;
            }
            NvmlLayouts.device$vh.set(data, 0L, handles.get((int) event[0]));
            NvmlLayouts.eventType$vh.set(data, 0L, event[1]);
            NvmlLayouts.eventData$vh.set(data, 0L, event[2]);
            return NVML_SUCCESS;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return NVML_ERROR_UNKNOWN;
        }
    }

    @Override
    public int nvmlEventSetFree(MemorySegment set) {
        return NVML_SUCCESS;
    }
}
