package io.omai.agent.gpu.nvml;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.invoke.VarHandle;

/** The NVML structs the agent reads, laid out as {@code omai_nvml.h} pins them (LP64). */
public final class NvmlLayouts {
    private NvmlLayouts() {}

    /** {@code nvmlMemory_t}: total, free, used (bytes). 24 bytes. */
    public static final StructLayout NVML_MEMORY = MemoryLayout.structLayout(
            JAVA_LONG.withName("total"), JAVA_LONG.withName("free"), JAVA_LONG.withName("used"));

    public static final long MEMORY_USED_OFFSET = NVML_MEMORY.byteOffset(MemoryLayout.PathElement.groupElement("used"));

    /** {@code nvmlUtilization_t}: gpu, memory (percent of the last sample period). 8 bytes. */
    public static final StructLayout NVML_UTILIZATION =
            MemoryLayout.structLayout(JAVA_INT.withName("gpu"), JAVA_INT.withName("memory"));

    public static final long UTILIZATION_GPU_OFFSET =
            NVML_UTILIZATION.byteOffset(MemoryLayout.PathElement.groupElement("gpu"));

    public static final VarHandle total$vh = NVML_MEMORY.varHandle(MemoryLayout.PathElement.groupElement("total"));

    /** {@code nvmlEventData_t}: device, eventType, eventData, gpuInstanceId, computeInstanceId. 32 bytes. */
    public static final StructLayout NVML_EVENT_DATA = MemoryLayout.structLayout(
            ADDRESS.withName("device"),
            JAVA_LONG.withName("eventType"),
            JAVA_LONG.withName("eventData"),
            JAVA_INT.withName("gpuInstanceId"),
            JAVA_INT.withName("computeInstanceId"));

    public static final VarHandle device$vh =
            NVML_EVENT_DATA.varHandle(MemoryLayout.PathElement.groupElement("device"));
    public static final VarHandle eventType$vh =
            NVML_EVENT_DATA.varHandle(MemoryLayout.PathElement.groupElement("eventType"));
    public static final VarHandle eventData$vh =
            NVML_EVENT_DATA.varHandle(MemoryLayout.PathElement.groupElement("eventData"));

    /**
     * {@code nvmlProcessInfo_t} (the v2 layout {@code _v3} returns): pid, usedGpuMemory (bytes, or all ones when
     * not available), gpuInstanceId, computeInstanceId. 24 bytes.
     */
    public static final StructLayout NVML_PROCESS_INFO = MemoryLayout.structLayout(
            JAVA_INT.withName("pid"),
            MemoryLayout.paddingLayout(4),
            JAVA_LONG.withName("usedGpuMemory"),
            JAVA_INT.withName("gpuInstanceId"),
            JAVA_INT.withName("computeInstanceId"));

    public static final long PROCESS_INFO_PID_OFFSET =
            NVML_PROCESS_INFO.byteOffset(MemoryLayout.PathElement.groupElement("pid"));
    public static final long PROCESS_INFO_USED_MEMORY_OFFSET =
            NVML_PROCESS_INFO.byteOffset(MemoryLayout.PathElement.groupElement("usedGpuMemory"));

    /**
     * {@code nvmlProcessUtilizationSample_t}: pid, timeStamp (CPU time, µs), smUtil, memUtil, encUtil, decUtil
     * (percent). 32 bytes.
     */
    public static final StructLayout NVML_PROCESS_UTILIZATION_SAMPLE = MemoryLayout.structLayout(
            JAVA_INT.withName("pid"),
            MemoryLayout.paddingLayout(4),
            JAVA_LONG.withName("timeStamp"),
            JAVA_INT.withName("smUtil"),
            JAVA_INT.withName("memUtil"),
            JAVA_INT.withName("encUtil"),
            JAVA_INT.withName("decUtil"));

    public static final long SAMPLE_PID_OFFSET =
            NVML_PROCESS_UTILIZATION_SAMPLE.byteOffset(MemoryLayout.PathElement.groupElement("pid"));
    public static final long SAMPLE_TIMESTAMP_OFFSET =
            NVML_PROCESS_UTILIZATION_SAMPLE.byteOffset(MemoryLayout.PathElement.groupElement("timeStamp"));
    public static final long SAMPLE_SM_UTIL_OFFSET =
            NVML_PROCESS_UTILIZATION_SAMPLE.byteOffset(MemoryLayout.PathElement.groupElement("smUtil"));
}
