package io.omai.agent.metrics;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.omai.agent.metrics.GpuMetricsSource.GpuReading;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.ToDoubleFunction;

/**
 * Per physical GPU: memory total and handed out, the share of its time handed out, health, NVML telemetry
 * ({@link GpuTelemetry}: a figure NVML does not support has no series) and XID counts by XID; labelled
 * {@code gpu} (NVML index), {@code uuid}, {@code model} and {@code node}.
 */
final class GpuMetrics implements ScrapeRefresh {
    static final String MEMORY_TOTAL = "omai.gpu.memory.total";
    static final String MEMORY_ALLOCATED = "omai.gpu.memory.allocated";
    static final String COMPUTE_ALLOCATED = "omai.gpu.compute.allocated.ratio";
    static final String HEALTHY = "omai.gpu.healthy";
    static final String XID_ERRORS = "omai.gpu.xid.errors";

    private final GpuMetricsSource source;
    private final SeriesSet<GpuKey, GpuReading> series;
    private final SeriesSet<TelemetryKey, Double> telemetry;
    private final SeriesSet<XidKey, Long> xids;

    /** The labels of one GPU's series; a GPU whose index or model changed gets new series. */
    private record GpuKey(String uuid, int index, String model) {}

    private record TelemetryKey(GpuKey gpu, GpuTelemetry family) {}

    private record XidKey(GpuKey gpu, long xid) {}

    GpuMetrics(MeterRegistry registry, GpuMetricsSource source, String nodeName) {
        this.source = source;
        this.series = new SeriesSet<>(registry, (reg, key, latest) -> {
            Tags tags = tags(key, nodeName);
            List<Meter> meters = new ArrayList<>();
            meters.add(gauge(
                    reg, MEMORY_TOTAL, "bytes", "Memory of the GPU card", tags, latest, GpuReading::memoryTotalBytes));
            meters.add(gauge(
                    reg,
                    MEMORY_ALLOCATED,
                    "bytes",
                    "Sum of the GPU memory quotas handed out on the GPU (unlimited allocations add nothing)",
                    tags,
                    latest,
                    GpuReading::memoryAllocatedBytes));
            meters.add(gauge(
                    reg,
                    COMPUTE_ALLOCATED,
                    null,
                    "Share of the GPU's time handed out to containers, 0..1 (omai.io/milli-gpu allocated / 1000)",
                    tags,
                    latest,
                    reading -> (double) reading.milliAllocated() / reading.milliCapacity()));
            meters.add(gauge(
                    reg,
                    HEALTHY,
                    null,
                    "1 while the GPU is advertised Healthy to kubelet, 0 while Unhealthy",
                    tags,
                    latest,
                    reading -> reading.healthy() ? 1 : 0));
            return meters;
        });
        this.telemetry = new SeriesSet<>(registry, (reg, key, latest) -> {
            GpuTelemetry family = key.family();
            Tags tags = tags(key.gpu(), nodeName);
            if (family.counter()) {
                return List.of(FunctionCounter.builder(family.meterName(), latest, l -> l.get())
                        .description(family.help())
                        .tags(tags.and("type", family.eccType()))
                        .register(reg));
            }
            return List.of(gauge(reg, family.meterName(), family.baseUnit(), family.help(), tags, latest, v -> v));
        });
        this.xids = new SeriesSet<>(
                registry,
                (reg, key, latest) -> List.of(FunctionCounter.builder(XID_ERRORS, latest, l -> l.get())
                        .description("XID critical errors NVML reported for the GPU since the agent started, by XID "
                                + "(application XIDs the agent ignores for health included)")
                        .tags(tags(key.gpu(), nodeName).and("xid", Long.toString(key.xid())))
                        .register(reg)));
    }

    private static Tags tags(GpuKey key, String nodeName) {
        return Tags.of(
                "gpu", Integer.toString(key.index()), "uuid", key.uuid(), "model", key.model(), "node", nodeName);
    }

    @Override
    public void refresh() {
        Map<GpuKey, GpuReading> current = new LinkedHashMap<>();
        Map<TelemetryKey, Double> figures = new LinkedHashMap<>();
        Map<XidKey, Long> xidCounts = new LinkedHashMap<>();
        for (GpuReading gpu : source.gpus()) {
            GpuKey key = new GpuKey(gpu.uuid(), gpu.index(), gpu.model());
            if (current.putIfAbsent(key, gpu) != null) {
                continue;
            }
            gpu.telemetry().forEach((family, value) -> figures.put(new TelemetryKey(key, family), value));
            gpu.xidCounts().forEach((xid, count) -> xidCounts.put(new XidKey(key, xid), count));
        }
        series.update(current);
        telemetry.update(figures);
        xids.update(xidCounts);
    }

    static <V> Gauge gauge(
            MeterRegistry registry,
            String name,
            String baseUnit,
            String description,
            Tags tags,
            SeriesSet.Latest<V> latest,
            ToDoubleFunction<V> value) {
        return Gauge.builder(name, latest, l -> value.applyAsDouble(l.get()))
                .baseUnit(baseUnit)
                .description(description)
                .tags(tags)
                .register(registry);
    }
}
