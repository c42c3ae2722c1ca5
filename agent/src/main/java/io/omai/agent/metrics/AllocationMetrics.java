package io.omai.agent.metrics;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.omai.agent.metrics.AllocationMetricsSource.TrackedAllocation;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.LongSupplier;
import java.util.function.ToDoubleFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Per allocation and GPU: memory limit, use and peak, compute quota, and counters of the GPU time consumed, kernels
 * launched, time throttled and device allocations denied, read from the allocation's control and usage files at
 * scrape time; the age of the agent's heartbeat in its control file; and the tenants with allocations on the node.
 * Labelled {@code pod}, {@code namespace}, {@code container}, {@code tenant}, {@code gpu} (NVML index),
 * {@code uuid} and {@code node}. Series of allocations that are gone are removed, so cardinality stays that of the
 * containers running now.
 *
 * <p>The usage file is written by the container, so every value from it is hostile: counters are kept here as
 * {@link MonotonicTotal}s (never backwards, jumps cut to the physically possible), gauges are clamped to their range.
 *
 * <p>An allocation whose container is not known yet (made by Allocate, named by the next PodResources
 * reconciliation) is labelled with its allocation id as {@code pod} and empty namespace and container, so two
 * such allocations never share a series.
 */
final class AllocationMetrics implements ScrapeRefresh {
    private static final Logger log = LoggerFactory.getLogger(AllocationMetrics.class);

    static final String MEMORY_LIMIT = "omai.allocation.memory.limit";
    static final String MEMORY_USED = "omai.allocation.memory.used";
    static final String MEMORY_PEAK = "omai.allocation.memory.peak";
    static final String COMPUTE_QUOTA = "omai.allocation.compute.quota.ratio";
    static final String GPU_TIME = "omai.allocation.gpu.time";
    static final String LAUNCHES = "omai.allocation.kernel.launches";
    static final String THROTTLED = "omai.allocation.throttled";
    static final String DENIED = "omai.allocation.denied.allocations";
    static final String HEARTBEAT_AGE = "omai.heartbeat.age";
    static final String NODE_TENANTS = "omai.node.tenants";

    /** One GPU gives at most one second of its time per second. */
    static final double MAX_GPU_NS_PER_SECOND = 1e9;
    /** Every process slot of the usage file waiting at once. */
    static final double MAX_THROTTLED_NS_PER_SECOND = 1e9 * ShmLayout.MAX_SLOTS;
    /** Far above what a GPU can launch or a driver can answer; only there to stop forged jumps. */
    static final double MAX_EVENTS_PER_SECOND = 1e7;

    private final AllocationMetricsSource source;
    private final String nodeName;
    private final LongSupplier nanoClock;
    private final LongSupplier monotonicClock;
    private final SeriesSet<SeriesKey, DeviceReading> series;
    private final SeriesSet<String, Integer> tenants;
    // only touched by refresh(), which AgentMetrics serialises
    private final Map<FilesKey, AllocationFiles> openFiles = new HashMap<>();
    private final Map<SeriesKey, Totals> totals = new HashMap<>();
    private final Set<FilesKey> unreadable = new HashSet<>();

    /** Labels of one allocation's series on one GPU. */
    record SeriesKey(String namespace, String pod, String container, String tenant, String gpu, String uuid) {}

    /** One allocation's files: a re-made allocation (same id, new files) is a different key. */
    private record FilesKey(String id, Instant createdAt) {
        static FilesKey of(TrackedAllocation allocation) {
            return new FilesKey(allocation.id(), allocation.createdAt());
        }
    }

    /** What the meters of one allocation on one GPU show. */
    record DeviceReading(
            double memoryLimitBytes,
            double memoryUsedBytes,
            double memoryPeakBytes,
            double computeQuota,
            double gpuSeconds,
            double launches,
            double throttledSeconds,
            double deniedAllocations,
            double heartbeatAgeSeconds) {}

    /** The counters of one series, kept across scrapes; a re-made allocation starts new ones. */
    private record Totals(
            FilesKey files,
            MonotonicTotal gpuNs,
            MonotonicTotal launches,
            MonotonicTotal throttledNs,
            MonotonicTotal denied) {}

    AllocationMetrics(
            MeterRegistry registry,
            AllocationMetricsSource source,
            String nodeName,
            LongSupplier nanoClock,
            LongSupplier monotonicClock) {
        this.source = source;
        this.nodeName = nodeName;
        this.nanoClock = nanoClock;
        this.monotonicClock = monotonicClock;
        this.series = new SeriesSet<>(registry, this::register);
        this.tenants = new SeriesSet<>(
                registry,
                (reg, tenant, latest) -> List.of(GpuMetrics.gauge(
                        reg,
                        NODE_TENANTS,
                        null,
                        "Allocations of the tenant on the node (allocations of unknown tenants not counted)",
                        Tags.of("tenant", tenant, "node", nodeName),
                        latest,
                        Integer::doubleValue)));
    }

    private List<Meter> register(MeterRegistry registry, SeriesKey key, SeriesSet.Latest<DeviceReading> latest) {
        Tags tags = Tags.of(
                "namespace",
                key.namespace(),
                "pod",
                key.pod(),
                "container",
                key.container(),
                "tenant",
                key.tenant(),
                "gpu",
                key.gpu(),
                "uuid",
                key.uuid(),
                "node",
                nodeName);
        List<Meter> meters = new ArrayList<>();
        meters.add(GpuMetrics.gauge(
                registry,
                MEMORY_LIMIT,
                "bytes",
                "GPU memory quota of the container on the GPU (+Inf when unlimited)",
                tags,
                latest,
                DeviceReading::memoryLimitBytes));
        meters.add(GpuMetrics.gauge(
                registry,
                MEMORY_USED,
                "bytes",
                "GPU memory the container's processes hold on the GPU (shim accounting, clamped to 0..quota)",
                tags,
                latest,
                DeviceReading::memoryUsedBytes));
        meters.add(GpuMetrics.gauge(
                registry,
                MEMORY_PEAK,
                "bytes",
                "Most GPU memory the container's processes held on the GPU at once (shim accounting, at least "
                        + "the memory held now, clamped to 0..quota)",
                tags,
                latest,
                DeviceReading::memoryPeakBytes));
        meters.add(GpuMetrics.gauge(
                registry,
                COMPUTE_QUOTA,
                null,
                "Share of the GPU's time the container is entitled to, 0..1",
                tags,
                latest,
                DeviceReading::computeQuota));
        meters.add(counter(
                registry,
                GPU_TIME,
                "seconds",
                "GPU time the container's kernels consumed on the GPU; rate() of it is the share achieved "
                        + "(never decreases; increases cut to one GPU-second per second)",
                tags,
                latest,
                DeviceReading::gpuSeconds));
        meters.add(counter(
                registry,
                LAUNCHES,
                null,
                "Kernel launches of the container on the GPU (never decreases, whatever the usage file says)",
                tags,
                latest,
                DeviceReading::launches));
        meters.add(counter(
                registry,
                THROTTLED,
                "seconds",
                "Time the container's kernel launches on the GPU waited for compute tokens, summed over its "
                        + "processes (never decreases)",
                tags,
                latest,
                DeviceReading::throttledSeconds));
        meters.add(counter(
                registry,
                DENIED,
                null,
                "GPU memory allocations of the container refused at its quota (never decreases)",
                tags,
                latest,
                DeviceReading::deniedAllocations));
        meters.add(GpuMetrics.gauge(
                registry,
                HEARTBEAT_AGE,
                "seconds",
                "Time since the agent last wrote its heartbeat into the allocation's control file (NaN before the "
                        + "first); past max(2 s, 20 compute periods) the shim enforces the quota on its own",
                tags,
                latest,
                DeviceReading::heartbeatAgeSeconds));
        return meters;
    }

    private static FunctionCounter counter(
            MeterRegistry registry,
            String name,
            String baseUnit,
            String description,
            Tags tags,
            SeriesSet.Latest<DeviceReading> latest,
            ToDoubleFunction<DeviceReading> value) {
        return FunctionCounter.builder(name, latest, l -> value.applyAsDouble(l.get()))
                .baseUnit(baseUnit)
                .description(description)
                .tags(tags)
                .register(registry);
    }

    @Override
    public void refresh() {
        List<TrackedAllocation> allocations = source.allocations();
        Set<FilesKey> live = new HashSet<>();
        Map<SeriesKey, DeviceReading> readings = new LinkedHashMap<>();
        Map<String, Integer> allocationsByTenant = new TreeMap<>();
        long now = nanoClock.getAsLong();
        Instant wallNow = Instant.now();
        for (TrackedAllocation allocation : allocations) {
            FilesKey filesKey = FilesKey.of(allocation);
            live.add(filesKey);
            if (!allocation.tenant().isEmpty()) {
                allocationsByTenant.merge(allocation.tenant(), 1, Integer::sum);
            }
            AllocationFiles files = open(allocation, filesKey);
            if (files == null) {
                continue;
            }
            try {
                ControlSnapshot control = files.control().read();
                UsageSnapshot usage = files.usage().read();
                long heartbeat = control.heartbeatNs();
                double heartbeatAge =
                        heartbeat == 0 ? Double.NaN : Math.max(monotonicClock.getAsLong() - heartbeat, 0) / 1e9;
                long ageNanos =
                        Duration.between(allocation.createdAt(), wallNow).toNanos();
                for (int device = 0; device < control.devices().size(); device++) {
                    ControlSnapshot.Device quota = control.devices().get(device);
                    UsageSnapshot.DeviceTotals used = usage.devices().get(device);
                    SeriesKey key = new SeriesKey(
                            allocation.namespace(),
                            allocation.ownerKnown() ? allocation.pod() : allocation.id(),
                            allocation.container(),
                            allocation.tenant(),
                            Integer.toString(quota.hostIndex()),
                            quota.uuid());
                    if (readings.containsKey(key)) {
                        continue; // one container holds one allocation; should two share labels, the first keeps them
                    }
                    Totals counters = totals.get(key);
                    if (counters == null || !counters.files().equals(filesKey)) {
                        counters = new Totals(
                                filesKey,
                                new MonotonicTotal(MAX_GPU_NS_PER_SECOND, used.tokensConsumedNs(), ageNanos, now),
                                new MonotonicTotal(MAX_EVENTS_PER_SECOND, used.launches(), ageNanos, now),
                                new MonotonicTotal(MAX_THROTTLED_NS_PER_SECOND, used.throttledNs(), ageNanos, now),
                                new MonotonicTotal(MAX_EVENTS_PER_SECOND, used.deniedAllocs(), ageNanos, now));
                        totals.put(key, counters);
                    } else {
                        counters.gpuNs().advance(used.tokensConsumedNs(), now);
                        counters.launches().advance(used.launches(), now);
                        counters.throttledNs().advance(used.throttledNs(), now);
                        counters.denied().advance(used.deniedAllocs(), now);
                    }
                    double limit = quota.memoryUnlimited() ? Double.POSITIVE_INFINITY : quota.memoryLimitBytes();
                    readings.put(
                            key,
                            new DeviceReading(
                                    limit,
                                    clamp(used.bytesReserved(), limit),
                                    Math.max(clamp(used.bytesPeak(), limit), clamp(used.bytesReserved(), limit)),
                                    quota.computeQuotaMilli() / 1000.0,
                                    counters.gpuNs().total() / 1e9,
                                    counters.launches().total(),
                                    counters.throttledNs().total() / 1e9,
                                    counters.denied().total(),
                                    heartbeatAge));
                }
                unreadable.remove(filesKey);
            } catch (IOException | RuntimeException e) {
                // a damaged (truncated by its container: DamagedRegionException) or half-removed file: skip it
                // this scrape (reopened next time), never fail the scrape
                warnOnce(allocation, filesKey, e);
                close(filesKey);
            }
        }
        closeGone(live);
        // counters of series that are gone go with them; a series skipped this scrape (unreadable) keeps its own
        totals.keySet().removeIf(key -> !live.contains(totals.get(key).files()));
        series.update(readings);
        tenants.update(allocationsByTenant);
    }

    /** A byte count from the usage file, within 0..limit (the shim never lets the container hold more). */
    private static double clamp(long bytes, double limit) {
        return Math.min((double) Math.max(bytes, 0), limit);
    }

    private AllocationFiles open(TrackedAllocation allocation, FilesKey key) {
        AllocationFiles files = openFiles.get(key);
        if (files != null) {
            return files;
        }
        try {
            files = AllocationFiles.openReadOnly(allocation.directory());
        } catch (IOException | RuntimeException e) {
            warnOnce(allocation, key, e);
            return null;
        }
        openFiles.put(key, files);
        return files;
    }

    /** Once per allocation until it reads again: a broken file usually stays broken between scrapes. */
    private void warnOnce(TrackedAllocation allocation, FilesKey key, Exception e) {
        if (unreadable.add(key)) {
            log.warn(
                    "event=allocation_metrics_unreadable allocation={} dir={} error=\"{}\" detail=\"its series "
                            + "are left out until it reads again\"",
                    allocation.id(),
                    allocation.directory(),
                    e.toString());
        }
    }

    private void closeGone(Set<FilesKey> live) {
        Iterator<Map.Entry<FilesKey, AllocationFiles>> open =
                openFiles.entrySet().iterator();
        while (open.hasNext()) {
            Map.Entry<FilesKey, AllocationFiles> entry = open.next();
            if (!live.contains(entry.getKey())) {
                entry.getValue().close();
                open.remove();
            }
        }
        unreadable.retainAll(live);
    }

    private void close(FilesKey key) {
        AllocationFiles files = openFiles.remove(key);
        if (files != null) {
            files.close();
        }
    }

    /** Unmaps every file this binder holds. */
    void close() {
        openFiles.values().forEach(AllocationFiles::close);
        openFiles.clear();
    }
}
