package io.omai.agent.metrics;

import java.util.List;

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
     * @param memoryUsedBytes memory in use as NVML reports it, or NaN when NVML cannot tell
     * @param milliAllocated milli-GPU shares handed out on it
     * @param milliCapacity shares it offers (1000)
     * @param utilization NVML's utilisation, 0..1, or NaN when NVML cannot tell
     * @param healthy false while it is advertised Unhealthy
     */
    record GpuReading(
            int index,
            String uuid,
            String model,
            long memoryTotalBytes,
            long memoryAllocatedBytes,
            double memoryUsedBytes,
            int milliAllocated,
            int milliCapacity,
            double utilization,
            boolean healthy) {
        public GpuReading {
            if (uuid == null || uuid.isBlank()) {
                throw new IllegalArgumentException("GPU " + index + " has no UUID");
            }
            if (model == null) {
                throw new IllegalArgumentException("GPU " + uuid + " has no model (use \"\" when unknown)");
            }
            if (!Double.isNaN(utilization) && (utilization < 0 || utilization > 1)) {
                throw new IllegalArgumentException(
                        "GPU " + uuid + ": utilisation " + utilization + " is outside 0..1 (NaN when unknown)");
            }
        }
    }
}
