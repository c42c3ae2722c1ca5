package io.omai.agent.metrics;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.nvml.NvmlDowncalls;
import io.omai.agent.gpu.nvml.NvmlLayouts;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * The two live NVML figures of a GPU the metrics show: memory in use ({@code nvmlDeviceGetMemoryInfo}) and
 * utilisation ({@code nvmlDeviceGetUtilizationRates}, linked here because nothing else in the agent needs it).
 * A failing query reads as NaN ("unknown"), never as an error of the scrape: health is the health monitor's
 * business.
 */
final class NvmlGpuReadings {
    /** {@code nvmlUtilization_t}: gpu, memory (percent). 8 bytes. */
    static final StructLayout NVML_UTILIZATION =
            MemoryLayout.structLayout(JAVA_INT.withName("gpu"), JAVA_INT.withName("memory"));

    private static final long MEMORY_USED_OFFSET =
            NvmlLayouts.NVML_MEMORY.byteOffset(MemoryLayout.PathElement.groupElement("used"));

    /** {@code nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)} */
    @FunctionalInterface
    interface UtilizationRates {
        int nvmlDeviceGetUtilizationRates(MemorySegment device, MemorySegment utilization);

        /** For drivers (or fakes) without the function. */
        UtilizationRates NOT_SUPPORTED = (device, utilization) -> NvmlLibrary.NVML_ERROR_NOT_SUPPORTED;

        /** The function in the NVML library the agent bound, or {@link #NOT_SUPPORTED} when it lacks it. */
        static UtilizationRates link() {
            Optional<MethodHandle> handle;
            try {
                handle = NvmlDowncalls.optional(
                        NvmlDowncalls.open(NvmlDowncalls.library()),
                        "nvmlDeviceGetUtilizationRates",
                        FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
            } catch (LinkageError e) {
                return NOT_SUPPORTED; // the agent's own binding reports an unloadable library; here it is a NaN
            }
            if (handle.isEmpty()) {
                return NOT_SUPPORTED;
            }
            MethodHandle mh = handle.get();
            return (device, utilization) -> {
                try {
                    return (int) mh.invokeExact(device, utilization);
                } catch (Throwable t) {
                    throw new AssertionError("nvmlDeviceGetUtilizationRates downcall failed", t);
                }
            };
        }
    }

    /** What NVML says about one GPU now; NaN where it cannot tell. */
    record Reading(double memoryUsedBytes, double utilization) {}

    private final NvmlLibrary nvml;
    private final UtilizationRates utilizationRates;

    NvmlGpuReadings(NvmlLibrary nvml, UtilizationRates utilizationRates) {
        this.nvml = nvml;
        this.utilizationRates = utilizationRates;
    }

    Reading read(GpuDevice gpu) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handleOut = arena.allocate(ADDRESS);
            if (nvml.nvmlDeviceGetHandleByIndex_v2(gpu.index(), handleOut) != NvmlLibrary.NVML_SUCCESS) {
                return new Reading(Double.NaN, Double.NaN);
            }
            MemorySegment handle = handleOut.get(ADDRESS, 0);
            MemorySegment memory = arena.allocate(NvmlLayouts.NVML_MEMORY);
            double used = nvml.nvmlDeviceGetMemoryInfo(handle, memory) == NvmlLibrary.NVML_SUCCESS
                    ? memory.get(JAVA_LONG, MEMORY_USED_OFFSET)
                    : Double.NaN;
            MemorySegment rates = arena.allocate(NVML_UTILIZATION);
            double utilization = Double.NaN;
            if (utilizationRates.nvmlDeviceGetUtilizationRates(handle, rates) == NvmlLibrary.NVML_SUCCESS) {
                int percent = rates.get(JAVA_INT, 0);
                utilization = percent >= 0 && percent <= 100 ? percent / 100.0 : Double.NaN;
            }
            return new Reading(used, utilization);
        }
    }
}
