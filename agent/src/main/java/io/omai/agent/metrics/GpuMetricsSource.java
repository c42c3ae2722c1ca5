package io.omai.agent.metrics;

import java.util.List;
import java.util.Map;

/**
 * What {@link GpuMetrics} shows about each physical GPU, asked once per scrape. The daemon answers it from the
 * ledger, the health monitor and NVML ({@link NodeAgentSources}); a simulator or a test may answer it from
 * anything.
 */
@FunctionalInterface
public interface GpuMetricsSource {
    /** Every GPU the agent shares now, read when called (no caching expected). */
    List<GpuReading> gpus();

    /**
     * One GPU at one moment.
     *
     * @param index NVML index (the {@code gpu} label)
     * @param model product name (the {@code model} label)
     * @param memoryAllocatedBytes the sum of the memory quotas handed out on it (unlimited allocations add nothing)
     * @param milliAllocated milli-GPU shares handed out on it
     * @param milliCapacity shares it offers (1000)
     * @param healthy false while it is advertised Unhealthy
     * @param telemetry what NVML reported now; a figure it does not support is absent
     * @param xidCounts XID critical errors seen since the agent started, by XID
     */
    record GpuReading(
            int index,
            String uuid,
            String model,
            long memoryTotalBytes,
            long memoryAllocatedBytes,
            int milliAllocated,
            int milliCapacity,
            boolean healthy,
            Map<GpuTelemetry, Double> telemetry,
            Map<Long, Long> xidCounts) {
        public GpuReading {
            if (uuid == null || uuid.isBlank()) {
                throw new IllegalArgumentException("GPU " + index + " has no UUID");
            }
            if (model == null) {
                throw new IllegalArgumentException("GPU " + uuid + " has no model (use \"\" when unknown)");
            }
            if (milliCapacity <= 0) {
                throw new IllegalArgumentException(
                        "GPU " + uuid + ": capacity " + milliCapacity + " milli-GPU; expected a positive number");
            }
            Double utilization = telemetry.get(GpuTelemetry.UTILIZATION);
            if (utilization != null && !(utilization >= 0 && utilization <= 1)) {
                throw new IllegalArgumentException("GPU " + uuid + ": utilisation " + utilization
                        + " is outside 0..1 (leave it out when unknown)");
            }
            telemetry = Map.copyOf(telemetry);
            xidCounts = Map.copyOf(xidCounts);
        }
    }
}
