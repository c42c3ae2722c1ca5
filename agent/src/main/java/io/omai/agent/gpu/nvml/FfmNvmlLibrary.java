package io.omai.agent.gpu.nvml;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * {@link NvmlLibrary} through the FFM API. Every handle is linked once, when this class initialises, from the
 * library {@link NvmlDowncalls#useLibrary} chose; a missing library or required symbol fails that first use with a
 * {@link LinkageError} naming it. Calls use {@code invokeExact}; a {@code Throwable} from a downcall is a bug in
 * the binding and surfaces as {@link AssertionError}.
 */
public final class FfmNvmlLibrary implements NvmlLibrary {
    private static final String LIBRARY = NvmlDowncalls.library();
    private static final SymbolLookup LOOKUP = NvmlDowncalls.open(LIBRARY);

    private static final FunctionDescriptor INT_VOID = FunctionDescriptor.of(JAVA_INT);
    private static final FunctionDescriptor INT_PTR = FunctionDescriptor.of(JAVA_INT, ADDRESS);
    private static final FunctionDescriptor INT_PTR_PTR = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS);
    private static final FunctionDescriptor INT_PTR_INT_PTR =
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
    private static final FunctionDescriptor INT_PTR_PTR_INT =
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT);

    private static final MethodHandle nvmlInit_v2$mh = link("nvmlInit_v2", INT_VOID);
    private static final MethodHandle nvmlShutdown$mh = link("nvmlShutdown", INT_VOID);
    private static final MethodHandle nvmlErrorString$mh =
            link("nvmlErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
    private static final MethodHandle nvmlDeviceGetCount_v2$mh = link("nvmlDeviceGetCount_v2", INT_PTR);
    private static final MethodHandle nvmlDeviceGetHandleByIndex_v2$mh =
            link("nvmlDeviceGetHandleByIndex_v2", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle nvmlDeviceGetUUID$mh = link("nvmlDeviceGetUUID", INT_PTR_PTR_INT);
    private static final MethodHandle nvmlDeviceGetName$mh = link("nvmlDeviceGetName", INT_PTR_PTR_INT);
    private static final MethodHandle nvmlDeviceGetIndex$mh = link("nvmlDeviceGetIndex", INT_PTR_PTR);
    private static final MethodHandle nvmlDeviceGetMinorNumber$mh = link("nvmlDeviceGetMinorNumber", INT_PTR_PTR);
    private static final MethodHandle nvmlDeviceGetMemoryInfo$mh = link("nvmlDeviceGetMemoryInfo", INT_PTR_PTR);
    private static final MethodHandle nvmlDeviceGetNumaNodeId$mh = NvmlDowncalls.optional(
                    LOOKUP, "nvmlDeviceGetNumaNodeId", INT_PTR_PTR)
            .orElse(null);
    private static final MethodHandle nvmlDeviceGetProcessUtilization$mh = NvmlDowncalls.optional(
                    LOOKUP,
                    "nvmlDeviceGetProcessUtilization",
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG))
            .orElse(null);
    private static final MethodHandle nvmlDeviceGetComputeRunningProcesses_v3$mh = NvmlDowncalls.optional(
                    LOOKUP,
                    "nvmlDeviceGetComputeRunningProcesses_v3",
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS))
            .orElse(null);
    private static final MethodHandle nvmlDeviceGetUtilizationRates$mh = NvmlDowncalls.optional(
                    LOOKUP, "nvmlDeviceGetUtilizationRates", INT_PTR_PTR)
            .orElse(null);
    private static final MethodHandle nvmlDeviceGetTemperature$mh = NvmlDowncalls.optional(
                    LOOKUP, "nvmlDeviceGetTemperature", INT_PTR_INT_PTR)
            .orElse(null);
    private static final MethodHandle nvmlDeviceGetPowerUsage$mh = NvmlDowncalls.optional(
                    LOOKUP, "nvmlDeviceGetPowerUsage", INT_PTR_PTR)
            .orElse(null);
    private static final MethodHandle nvmlDeviceGetClockInfo$mh = NvmlDowncalls.optional(
                    LOOKUP, "nvmlDeviceGetClockInfo", INT_PTR_INT_PTR)
            .orElse(null);
    private static final MethodHandle nvmlDeviceGetTotalEccErrors$mh = NvmlDowncalls.optional(
                    LOOKUP,
                    "nvmlDeviceGetTotalEccErrors",
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS))
            .orElse(null);
    private static final MethodHandle nvmlEventSetCreate$mh = link("nvmlEventSetCreate", INT_PTR);
    private static final MethodHandle nvmlDeviceRegisterEvents$mh =
            link("nvmlDeviceRegisterEvents", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS));
    private static final MethodHandle nvmlEventSetWait_v2$mh = link("nvmlEventSetWait_v2", INT_PTR_PTR_INT);
    private static final MethodHandle nvmlEventSetFree$mh = link("nvmlEventSetFree", INT_PTR);

    private static final FfmNvmlLibrary INSTANCE = new FfmNvmlLibrary();

    private FfmNvmlLibrary() {}

    /**
     * The binding to the library {@link NvmlDowncalls#useLibrary} chose.
     *
     * @throws LinkageError (wrapped in {@link ExceptionInInitializerError} by the JVM on first use) when the
     *     library or a required symbol is missing
     */
    public static NvmlLibrary instance() {
        return INSTANCE;
    }

    /** The library this binding was linked against. */
    public static String libraryName() {
        return LIBRARY;
    }

    private static MethodHandle link(String name, FunctionDescriptor fd) {
        return NvmlDowncalls.required(LOOKUP, LIBRARY, name, fd);
    }

    @Override
    public int nvmlInit_v2() {
        try {
            return (int) nvmlInit_v2$mh.invokeExact();
        } catch (Throwable t) {
            throw new AssertionError("nvmlInit_v2", t);
        }
    }

    @Override
    public int nvmlShutdown() {
        try {
            return (int) nvmlShutdown$mh.invokeExact();
        } catch (Throwable t) {
            throw new AssertionError("nvmlShutdown", t);
        }
    }

    @Override
    @SuppressWarnings("restricted") // NVML returns a C string of unknown length: bounded by its 256-byte buffer
    public String nvmlErrorString(int result) {
        try {
            MemorySegment text = (MemorySegment) nvmlErrorString$mh.invokeExact(result);
            return text.equals(MemorySegment.NULL)
                    ? "nvmlReturn_t " + result
                    : text.reinterpret(256).getString(0);
        } catch (Throwable t) {
            throw new AssertionError("nvmlErrorString", t);
        }
    }

    @Override
    public int nvmlDeviceGetCount_v2(MemorySegment deviceCount) {
        try {
            return (int) nvmlDeviceGetCount_v2$mh.invokeExact(deviceCount);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetCount_v2", t);
        }
    }

    @Override
    public int nvmlDeviceGetHandleByIndex_v2(int index, MemorySegment device) {
        try {
            return (int) nvmlDeviceGetHandleByIndex_v2$mh.invokeExact(index, device);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetHandleByIndex_v2", t);
        }
    }

    @Override
    public int nvmlDeviceGetUUID(MemorySegment device, MemorySegment uuid, int length) {
        try {
            return (int) nvmlDeviceGetUUID$mh.invokeExact(device, uuid, length);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetUUID", t);
        }
    }

    @Override
    public int nvmlDeviceGetName(MemorySegment device, MemorySegment name, int length) {
        try {
            return (int) nvmlDeviceGetName$mh.invokeExact(device, name, length);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetName", t);
        }
    }

    @Override
    public int nvmlDeviceGetIndex(MemorySegment device, MemorySegment index) {
        try {
            return (int) nvmlDeviceGetIndex$mh.invokeExact(device, index);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetIndex", t);
        }
    }

    @Override
    public int nvmlDeviceGetMinorNumber(MemorySegment device, MemorySegment minorNumber) {
        try {
            return (int) nvmlDeviceGetMinorNumber$mh.invokeExact(device, minorNumber);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetMinorNumber", t);
        }
    }

    @Override
    public int nvmlDeviceGetMemoryInfo(MemorySegment device, MemorySegment memory) {
        try {
            return (int) nvmlDeviceGetMemoryInfo$mh.invokeExact(device, memory);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetMemoryInfo", t);
        }
    }

    @Override
    public int nvmlDeviceGetNumaNodeId(MemorySegment device, MemorySegment node) {
        if (nvmlDeviceGetNumaNodeId$mh == null) {
            return NVML_ERROR_FUNCTION_NOT_FOUND;
        }
        try {
            return (int) nvmlDeviceGetNumaNodeId$mh.invokeExact(device, node);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetNumaNodeId", t);
        }
    }

    @Override
    public int nvmlDeviceGetProcessUtilization(
            MemorySegment device,
            MemorySegment utilization,
            MemorySegment processSamplesCount,
            long lastSeenTimeStamp) {
        if (nvmlDeviceGetProcessUtilization$mh == null) {
            return NVML_ERROR_FUNCTION_NOT_FOUND;
        }
        try {
            return (int) nvmlDeviceGetProcessUtilization$mh.invokeExact(
                    device, utilization, processSamplesCount, lastSeenTimeStamp);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetProcessUtilization", t);
        }
    }

    @Override
    public int nvmlDeviceGetComputeRunningProcesses_v3(
            MemorySegment device, MemorySegment infoCount, MemorySegment infos) {
        if (nvmlDeviceGetComputeRunningProcesses_v3$mh == null) {
            return NVML_ERROR_FUNCTION_NOT_FOUND;
        }
        try {
            return (int) nvmlDeviceGetComputeRunningProcesses_v3$mh.invokeExact(device, infoCount, infos);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetComputeRunningProcesses_v3", t);
        }
    }

    @Override
    public int nvmlDeviceGetUtilizationRates(MemorySegment device, MemorySegment utilization) {
        if (nvmlDeviceGetUtilizationRates$mh == null) {
            return NVML_ERROR_FUNCTION_NOT_FOUND;
        }
        try {
            return (int) nvmlDeviceGetUtilizationRates$mh.invokeExact(device, utilization);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetUtilizationRates", t);
        }
    }

    @Override
    public int nvmlDeviceGetTemperature(MemorySegment device, int sensorType, MemorySegment temp) {
        if (nvmlDeviceGetTemperature$mh == null) {
            return NVML_ERROR_FUNCTION_NOT_FOUND;
        }
        try {
            return (int) nvmlDeviceGetTemperature$mh.invokeExact(device, sensorType, temp);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetTemperature", t);
        }
    }

    @Override
    public int nvmlDeviceGetPowerUsage(MemorySegment device, MemorySegment power) {
        if (nvmlDeviceGetPowerUsage$mh == null) {
            return NVML_ERROR_FUNCTION_NOT_FOUND;
        }
        try {
            return (int) nvmlDeviceGetPowerUsage$mh.invokeExact(device, power);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetPowerUsage", t);
        }
    }

    @Override
    public int nvmlDeviceGetClockInfo(MemorySegment device, int type, MemorySegment clock) {
        if (nvmlDeviceGetClockInfo$mh == null) {
            return NVML_ERROR_FUNCTION_NOT_FOUND;
        }
        try {
            return (int) nvmlDeviceGetClockInfo$mh.invokeExact(device, type, clock);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetClockInfo", t);
        }
    }

    @Override
    public int nvmlDeviceGetTotalEccErrors(
            MemorySegment device, int errorType, int counterType, MemorySegment eccCounts) {
        if (nvmlDeviceGetTotalEccErrors$mh == null) {
            return NVML_ERROR_FUNCTION_NOT_FOUND;
        }
        try {
            return (int) nvmlDeviceGetTotalEccErrors$mh.invokeExact(device, errorType, counterType, eccCounts);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceGetTotalEccErrors", t);
        }
    }

    @Override
    public int nvmlEventSetCreate(MemorySegment set) {
        try {
            return (int) nvmlEventSetCreate$mh.invokeExact(set);
        } catch (Throwable t) {
            throw new AssertionError("nvmlEventSetCreate", t);
        }
    }

    @Override
    public int nvmlDeviceRegisterEvents(MemorySegment device, long eventTypes, MemorySegment set) {
        try {
            return (int) nvmlDeviceRegisterEvents$mh.invokeExact(device, eventTypes, set);
        } catch (Throwable t) {
            throw new AssertionError("nvmlDeviceRegisterEvents", t);
        }
    }

    @Override
    public int nvmlEventSetWait_v2(MemorySegment set, MemorySegment data, int timeoutms) {
        try {
            return (int) nvmlEventSetWait_v2$mh.invokeExact(set, data, timeoutms);
        } catch (Throwable t) {
            throw new AssertionError("nvmlEventSetWait_v2", t);
        }
    }

    @Override
    public int nvmlEventSetFree(MemorySegment set) {
        try {
            return (int) nvmlEventSetFree$mh.invokeExact(set);
        } catch (Throwable t) {
            throw new AssertionError("nvmlEventSetFree", t);
        }
    }
}
