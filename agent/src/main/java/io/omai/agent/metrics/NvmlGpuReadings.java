package io.omai.agent.metrics;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.nvml.NvmlLayouts;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The live NVML figures of every GPU ({@link GpuTelemetry}), read once per scrape for all GPUs together, on a
 * thread of its own and for at most {@link #DEFAULT_BUDGET}: a driver that hangs in a query costs the scrape that
 * budget (its GPUs show no telemetry), never the scrape itself. While a read is still stuck, later scrapes do not
 * start another. A figure whose query fails is left out; health is the health monitor's business.
 */
final class NvmlGpuReadings implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NvmlGpuReadings.class);
    static final Duration DEFAULT_BUDGET = Duration.ofSeconds(2);
    /** Above these a reading is not a GPU's (a broken driver or binding): left out. */
    private static final long MAX_TEMPERATURE_C = 200;

    private final NvmlLibrary nvml;
    private final Duration budget;
    private final ExecutorService reader = Executors.newSingleThreadExecutor(
            Thread.ofPlatform().daemon().name("omai-nvml-metrics").factory());
    // only touched by readAll, which AgentMetrics serialises
    private Future<Map<String, Map<GpuTelemetry, Double>>> pending;

    NvmlGpuReadings(NvmlLibrary nvml) {
        this(nvml, DEFAULT_BUDGET);
    }

    NvmlGpuReadings(NvmlLibrary nvml, Duration budget) {
        this.nvml = nvml;
        this.budget = budget;
    }

    /** The figures NVML gave for each GPU (by UUID); a GPU it could not be asked about maps to an empty map. */
    Map<String, Map<GpuTelemetry, Double>> readAll(List<GpuDevice> gpus) {
        if (pending != null && !pending.isDone()) {
            log.warn("event=nvml_telemetry_skipped detail=\"the previous read has not returned; no GPU telemetry\"");
            return Map.of();
        }
        pending = reader.submit(() -> {
            Map<String, Map<GpuTelemetry, Double>> all = new LinkedHashMap<>();
            for (GpuDevice gpu : gpus) {
                all.put(gpu.uuid(), read(gpu));
            }
            return all;
        });
        try {
            return pending.get(budget.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            log.warn(
                    "event=nvml_telemetry_slow budget_ms={} detail=\"NVML did not answer in time; no GPU telemetry "
                            + "this scrape\"",
                    budget.toMillis());
            return Map.of();
        } catch (ExecutionException e) {
            log.warn("event=nvml_telemetry_failed error=\"{}\"", e.getCause().toString(), e.getCause());
            return Map.of();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Map.of();
        }
    }

    /** One GPU's figures: each query once. */
    Map<GpuTelemetry, Double> read(GpuDevice gpu) {
        Map<GpuTelemetry, Double> values = new EnumMap<>(GpuTelemetry.class);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handleOut = arena.allocate(ADDRESS);
            if (nvml.nvmlDeviceGetHandleByIndex_v2(gpu.index(), handleOut) != NvmlLibrary.NVML_SUCCESS) {
                return values;
            }
            MemorySegment handle = handleOut.get(ADDRESS, 0);
            MemorySegment memory = arena.allocate(NvmlLayouts.NVML_MEMORY);
            if (nvml.nvmlDeviceGetMemoryInfo(handle, memory) == NvmlLibrary.NVML_SUCCESS) {
                long used = memory.get(JAVA_LONG, NvmlLayouts.MEMORY_USED_OFFSET);
                if (used >= 0 && used <= gpu.memoryBytes()) {
                    values.put(GpuTelemetry.MEMORY_USED, (double) used);
                }
            }
            MemorySegment rates = arena.allocate(NvmlLayouts.NVML_UTILIZATION);
            if (nvml.nvmlDeviceGetUtilizationRates(handle, rates) == NvmlLibrary.NVML_SUCCESS) {
                int percent = rates.get(JAVA_INT, NvmlLayouts.UTILIZATION_GPU_OFFSET);
                if (percent >= 0 && percent <= 100) {
                    values.put(GpuTelemetry.UTILIZATION, percent / 100.0);
                }
            }
            MemorySegment uint = arena.allocate(JAVA_INT);
            if (nvml.nvmlDeviceGetTemperature(handle, NvmlLibrary.NVML_TEMPERATURE_GPU, uint)
                    == NvmlLibrary.NVML_SUCCESS) {
                long celsius = Integer.toUnsignedLong(uint.get(JAVA_INT, 0));
                if (celsius <= MAX_TEMPERATURE_C) {
                    values.put(GpuTelemetry.TEMPERATURE, (double) celsius);
                }
            }
            if (nvml.nvmlDeviceGetPowerUsage(handle, uint) == NvmlLibrary.NVML_SUCCESS) {
                values.put(GpuTelemetry.POWER, Integer.toUnsignedLong(uint.get(JAVA_INT, 0)) / 1000.0);
            }
            if (nvml.nvmlDeviceGetClockInfo(handle, NvmlLibrary.NVML_CLOCK_SM, uint) == NvmlLibrary.NVML_SUCCESS) {
                values.put(GpuTelemetry.SM_CLOCK, Integer.toUnsignedLong(uint.get(JAVA_INT, 0)) * 1e6);
            }
            if (nvml.nvmlDeviceGetClockInfo(handle, NvmlLibrary.NVML_CLOCK_MEM, uint) == NvmlLibrary.NVML_SUCCESS) {
                values.put(GpuTelemetry.MEMORY_CLOCK, Integer.toUnsignedLong(uint.get(JAVA_INT, 0)) * 1e6);
            }
            MemorySegment count = arena.allocate(JAVA_LONG);
            if (nvml.nvmlDeviceGetTotalEccErrors(
                            handle, NvmlLibrary.NVML_MEMORY_ERROR_TYPE_CORRECTED, NvmlLibrary.NVML_VOLATILE_ECC, count)
                    == NvmlLibrary.NVML_SUCCESS) {
                values.put(GpuTelemetry.ECC_CORRECTED, unsigned(count.get(JAVA_LONG, 0)));
            }
            if (nvml.nvmlDeviceGetTotalEccErrors(
                            handle,
                            NvmlLibrary.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                            NvmlLibrary.NVML_VOLATILE_ECC,
                            count)
                    == NvmlLibrary.NVML_SUCCESS) {
                values.put(GpuTelemetry.ECC_UNCORRECTED, unsigned(count.get(JAVA_LONG, 0)));
            }
        }
        return values;
    }

    private static double unsigned(long value) {
        return value >= 0 ? value : Math.scalb((double) (value >>> 1), 1);
    }

    @Override
    public void close() {
        reader.shutdownNow();
    }
}
