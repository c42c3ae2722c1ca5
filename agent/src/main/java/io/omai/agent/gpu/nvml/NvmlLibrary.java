package io.omai.agent.gpu.nvml;

import java.lang.foreign.MemorySegment;

/**
 * The NVML functions the agent calls, mirrored one to one from {@code omai_nvml.h}: same names, same arguments
 * (pointers as {@link MemorySegment}s, {@code nvmlDevice_t}/{@code nvmlEventSet_t} handles as address
 * segments), and the raw {@code nvmlReturn_t} as an {@code int}. Nothing here interprets a result; that is
 * {@code io.omai.agent.gpu}'s job. Tests substitute a fake.
 */
public interface NvmlLibrary {
    int NVML_SUCCESS = 0;
    int NVML_ERROR_UNINITIALIZED = 1;
    int NVML_ERROR_INVALID_ARGUMENT = 2;
    int NVML_ERROR_NOT_SUPPORTED = 3;
    int NVML_ERROR_NOT_FOUND = 6;
    int NVML_ERROR_INSUFFICIENT_SIZE = 7;
    int NVML_ERROR_TIMEOUT = 10;
    int NVML_ERROR_FUNCTION_NOT_FOUND = 13;
    int NVML_ERROR_GPU_IS_LOST = 15;
    int NVML_ERROR_UNKNOWN = 999;

    long nvmlEventTypeSingleBitEccError = 0x1L;
    long nvmlEventTypeDoubleBitEccError = 0x2L;
    long nvmlEventTypeXidCriticalError = 0x8L;

    /** {@code nvmlTemperatureSensors_t}: the GPU die. */
    int NVML_TEMPERATURE_GPU = 0;
    /** {@code nvmlClockType_t} */
    int NVML_CLOCK_GRAPHICS = 0;

    int NVML_CLOCK_SM = 1;
    int NVML_CLOCK_MEM = 2;
    /** {@code nvmlMemoryErrorType_t}: single-bit ECC errors (corrected). */
    int NVML_MEMORY_ERROR_TYPE_CORRECTED = 0;
    /** {@code nvmlMemoryErrorType_t}: double-bit ECC errors (not corrected). */
    int NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1;
    /** {@code nvmlEccCounterType_t}: counts since the driver last loaded. */
    int NVML_VOLATILE_ECC = 0;
    /** {@code nvmlEccCounterType_t}: counts over the card's lifetime (kept in its InfoROM). */
    int NVML_AGGREGATE_ECC = 1;

    int NVML_DEVICE_UUID_V2_BUFFER_SIZE = 96;
    int NVML_DEVICE_NAME_V2_BUFFER_SIZE = 96;

    /** {@code nvmlReturn_t nvmlInit_v2(void)} */
    int nvmlInit_v2();

    /** {@code nvmlReturn_t nvmlShutdown(void)} */
    int nvmlShutdown();

    /** {@code const char *nvmlErrorString(nvmlReturn_t result)}, read as a Java string. */
    String nvmlErrorString(int result);

    /** {@code nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)} */
    int nvmlDeviceGetCount_v2(MemorySegment deviceCount);

    /** {@code nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)} */
    int nvmlDeviceGetHandleByIndex_v2(int index, MemorySegment device);

    /** {@code nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)} */
    int nvmlDeviceGetUUID(MemorySegment device, MemorySegment uuid, int length);

    /** {@code nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)} */
    int nvmlDeviceGetName(MemorySegment device, MemorySegment name, int length);

    /** {@code nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)} */
    int nvmlDeviceGetIndex(MemorySegment device, MemorySegment index);

    /** {@code nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)} */
    int nvmlDeviceGetMinorNumber(MemorySegment device, MemorySegment minorNumber);

    /** {@code nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)} */
    int nvmlDeviceGetMemoryInfo(MemorySegment device, MemorySegment memory);

    /**
     * {@code nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node)}; drivers that lack
     * it answer {@link #NVML_ERROR_FUNCTION_NOT_FOUND}.
     */
    int nvmlDeviceGetNumaNodeId(MemorySegment device, MemorySegment node);

    /**
     * {@code nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t
     * *utilization, unsigned int *processSamplesCount, unsigned long long lastSeenTimeStamp)}; samples are laid out
     * as {@link NvmlLayouts#NVML_PROCESS_UTILIZATION_SAMPLE}. Used by the compute controller; a library (or fake)
     * without it answers {@link #NVML_ERROR_FUNCTION_NOT_FOUND}.
     */
    default int nvmlDeviceGetProcessUtilization(
            MemorySegment device,
            MemorySegment utilization,
            MemorySegment processSamplesCount,
            long lastSeenTimeStamp) {
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    }

    /**
     * {@code nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
     * nvmlProcessInfo_t *infos)}; entries laid out as {@link NvmlLayouts#NVML_PROCESS_INFO}. Answers
     * {@link #NVML_ERROR_INSUFFICIENT_SIZE} with the count needed when {@code infos} is too small. Used by the
     * audit; a library (or fake) without it answers {@link #NVML_ERROR_FUNCTION_NOT_FOUND}.
     */
    default int nvmlDeviceGetComputeRunningProcesses_v3(
            MemorySegment device, MemorySegment infoCount, MemorySegment infos) {
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    }

    /**
     * {@code nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)};
     * laid out as {@link NvmlLayouts#NVML_UTILIZATION}. A library (or fake) without it answers
     * {@link #NVML_ERROR_FUNCTION_NOT_FOUND}.
     */
    default int nvmlDeviceGetUtilizationRates(MemorySegment device, MemorySegment utilization) {
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    }

    /**
     * {@code nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType,
     * unsigned int *temp)}, degrees Celsius.
     */
    default int nvmlDeviceGetTemperature(MemorySegment device, int sensorType, MemorySegment temp) {
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    }

    /** {@code nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)}, milliwatts. */
    default int nvmlDeviceGetPowerUsage(MemorySegment device, MemorySegment power) {
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    }

    /**
     * {@code nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock)},
     * MHz.
     */
    default int nvmlDeviceGetClockInfo(MemorySegment device, int type, MemorySegment clock) {
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    }

    /**
     * {@code nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t errorType,
     * nvmlEccCounterType_t counterType, unsigned long long *eccCounts)}; {@link #NVML_ERROR_NOT_SUPPORTED} where ECC
     * is off or absent.
     */
    default int nvmlDeviceGetTotalEccErrors(
            MemorySegment device, int errorType, int counterType, MemorySegment eccCounts) {
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    }

    /** {@code nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set)} */
    int nvmlEventSetCreate(MemorySegment set);

    /** {@code nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes, nvmlEventSet_t set)} */
    int nvmlDeviceRegisterEvents(MemorySegment device, long eventTypes, MemorySegment set);

    /** {@code nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)} */
    int nvmlEventSetWait_v2(MemorySegment set, MemorySegment data, int timeoutms);

    /** {@code nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set)} */
    int nvmlEventSetFree(MemorySegment set);
}
