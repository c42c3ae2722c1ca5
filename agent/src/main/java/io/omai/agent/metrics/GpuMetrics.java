package io.omai.agent.metrics;

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
 * Per physical GPU: memory total/allocated/used, milli-GPU shares allocated and offered, utilisation and health,
 * labelled {@code gpu} (NVML index), {@code uuid}, {@code model} and {@code node}.
 */
final class GpuMetrics implements ScrapeRefresh {
    static final String MEMORY_TOTAL = "omai.gpu.memory.total";
    static final String MEMORY_ALLOCATED = "omai.gpu.memory.allocated";
    static final String MEMORY_USED = "omai.gpu.memory.used";
    static final String MILLI_ALLOCATED = "omai.gpu.milli.allocated";
    static final String MILLI_CAPACITY = "omai.gpu.milli.capacity";
    static final String UTILIZATION = "omai.gpu.utilization.ratio";
    static final String HEALTHY = "omai.gpu.healthy";

    private final GpuMetricsSource source;
    private final SeriesSet<GpuKey, GpuReading> series;

    /** The labels of one GPU's series; a GPU whose index or model changed gets new series. */
    private record GpuKey(String uuid, int index, String model) {}

    GpuMetrics(MeterRegistry registry, GpuMetricsSource source, String nodeName) {
        this.source = source;
        this.series = new SeriesSet<>(registry, (reg, key, latest) -> {
            Tags tags = Tags.of(
                    "gpu", Integer.toString(key.index()), "uuid", key.uuid(), "model", key.model(), "node", nodeName);
            List<Meter> meters = new ArrayList<>();
            meters.add(gauge(
                    reg, MEMORY_TOTAL, "bytes", "Memory of the card", tags, latest, GpuReading::memoryTotalBytes));
            meters.add(gauge(
                    reg,
                    MEMORY_ALLOCATED,
                    "bytes",
                    "Sum of the memory quotas handed out on the GPU",
                    tags,
                    latest,
                    GpuReading::memoryAllocatedBytes));
            meters.add(gauge(
                    reg,
                    MEMORY_USED,
                    "bytes",
                    "Memory in use as NVML reports it (NaN when unknown)",
                    tags,
                    latest,
                    GpuReading::memoryUsedBytes));
            meters.add(gauge(
                    reg,
                    MILLI_ALLOCATED,
                    null,
                    "Milli-GPU shares handed out",
                    tags,
                    latest,
                    GpuReading::milliAllocated));
            meters.add(gauge(
                    reg,
                    MILLI_CAPACITY,
                    null,
                    "Milli-GPU shares the GPU offers",
                    tags,
                    latest,
                    GpuReading::milliCapacity));
            meters.add(gauge(
                    reg,
                    UTILIZATION,
                    null,
                    "NVML utilisation, 0..1 (NaN when unknown)",
                    tags,
                    latest,
                    GpuReading::utilization));
            meters.add(gauge(
                    reg,
                    HEALTHY,
                    null,
                    "1 healthy, 0 advertised Unhealthy",
                    tags,
                    latest,
                    reading -> reading.healthy() ? 1 : 0));
            return meters;
        });
    }

    @Override
    public void refresh() {
        Map<GpuKey, GpuReading> current = new LinkedHashMap<>();
        for (GpuReading gpu : source.gpus()) {
            current.putIfAbsent(new GpuKey(gpu.uuid(), gpu.index(), gpu.model()), gpu);
        }
        series.update(current);
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
