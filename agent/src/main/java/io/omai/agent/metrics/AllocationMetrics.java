package io.omai.agent.metrics;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.omai.agent.metrics.AllocationMetricsSource.TrackedAllocation;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.io.IOException;
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
 * Per allocation and GPU: memory limit and use, compute quota and the share achieved, time throttled and device
 * allocations denied, read from the allocation's control and usage files at scrape time; and the tenants with
 * allocations on the node. Labelled {@code pod}, {@code namespace}, {@code container}, {@code tenant},
 * {@code gpu} (NVML index). Series of allocations that are gone are removed, so cardinality stays that of the
 * containers running now.
 *
 * <p>An allocation whose container is not known yet (made by Allocate, named by the next PodResources
 * reconciliation) is labelled with its allocation id as {@code pod} and empty namespace and container, so two
 * such allocations never share a series.
 */
final class AllocationMetrics implements ScrapeRefresh {
    private static final Logger log = LoggerFactory.getLogger(AllocationMetrics.class);

    static final String MEMORY_LIMIT = "omai.allocation.memory.limit";
    static final String MEMORY_USED = "omai.allocation.memory.used";
    static final String COMPUTE_QUOTA = "omai.allocation.compute.quota.ratio";
    static final String COMPUTE_ACHIEVED = "omai.allocation.compute.achieved.ratio";
    static final String THROTTLED = "omai.allocation.throttled";
    static final String DENIED = "omai.allocation.denied.allocations";
    static final String NODE_TENANTS = "omai.node.tenants";

    /** The shortest interval the achieved share is measured over; closer scrapes reuse the last value. */
    static final long MIN_ACHIEVED_WINDOW_NS = 1_000_000_000L;

    private final AllocationMetricsSource source;
    private final LongSupplier nanoClock;
    private final SeriesSet<SeriesKey, DeviceReading> series;
    private final SeriesSet<String, Integer> tenants;
    // only touched by refresh(), which AgentMetrics serialises
    private final Map<FilesKey, AllocationFiles> openFiles = new HashMap<>();
    private final Map<SeriesKey, AchievedShare> achieved = new HashMap<>();
    private final Set<FilesKey> unreadable = new HashSet<>();

    /** Labels of one allocation's series on one GPU. */
    record SeriesKey(String namespace, String pod, String container, String tenant, String gpu) {}

    /** One allocation's files: a re-made allocation (same id, new files) is a different key. */
    private record FilesKey(String id, Instant createdAt) {
        static FilesKey of(TrackedAllocation allocation) {
            return new FilesKey(allocation.id(), allocation.createdAt());
        }
    }

    /** What the meters of one allocation on one GPU show. */
    record DeviceReading(
            double memoryLimitBytes,
            long memoryUsedBytes,
            double computeQuota,
            double computeAchieved,
            long throttledNs,
            long deniedAllocations) {}

    /** The baseline of the achieved share: tokens consumed at a time, and the share last computed. */
    private record AchievedShare(FilesKey files, long atNanos, long tokensNs, double share) {}

    AllocationMetrics(MeterRegistry registry, AllocationMetricsSource source, LongSupplier nanoClock) {
        this.source = source;
        this.nanoClock = nanoClock;
        this.series = new SeriesSet<>(registry, AllocationMetrics::register);
        this.tenants = new SeriesSet<>(
                registry,
                (reg, tenant, latest) -> List.of(GpuMetrics.gauge(
                        reg,
                        NODE_TENANTS,
                        null,
                        "Allocations of the tenant on the node",
                        Tags.of("tenant", tenant),
                        latest,
                        Integer::doubleValue)));
    }

    private static List<Meter> register(MeterRegistry registry, SeriesKey key, SeriesSet.Latest<DeviceReading> latest) {
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
                key.gpu());
        List<Meter> meters = new ArrayList<>();
        meters.add(GpuMetrics.gauge(
                registry,
                MEMORY_LIMIT,
                "bytes",
                "The container's memory quota on the GPU (+Inf when unlimited)",
                tags,
                latest,
                DeviceReading::memoryLimitBytes));
        meters.add(GpuMetrics.gauge(
                registry,
                MEMORY_USED,
                "bytes",
                "Memory its processes hold on the GPU (shim accounting)",
                tags,
                latest,
                DeviceReading::memoryUsedBytes));
        meters.add(GpuMetrics.gauge(
                registry,
                COMPUTE_QUOTA,
                null,
                "Its share of the GPU's time, 0..1",
                tags,
                latest,
                DeviceReading::computeQuota));
        meters.add(GpuMetrics.gauge(
                registry,
                COMPUTE_ACHIEVED,
                null,
                "GPU time it consumed per second between the last scrapes (NaN before the first interval)",
                tags,
                latest,
                DeviceReading::computeAchieved));
        meters.add(counter(
                registry,
                THROTTLED,
                "seconds",
                "Time its launches waited for compute tokens",
                tags,
                latest,
                reading -> reading.throttledNs() / 1e9));
        meters.add(counter(
                registry,
                DENIED,
                null,
                "Device memory allocations refused at its quota",
                tags,
                latest,
                DeviceReading::deniedAllocations));
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
                for (int device = 0; device < control.devices().size(); device++) {
                    ControlSnapshot.Device quota = control.devices().get(device);
                    UsageSnapshot.DeviceTotals totals = usage.devices().get(device);
                    SeriesKey key = new SeriesKey(
                            allocation.namespace(),
                            allocation.ownerKnown() ? allocation.pod() : allocation.id(),
                            allocation.container(),
                            allocation.tenant(),
                            Integer.toString(quota.hostIndex()));
                    // one container holds one allocation; should two ever share labels, the first keeps them
                    readings.putIfAbsent(
                            key,
                            new DeviceReading(
                                    quota.memoryUnlimited() ? Double.POSITIVE_INFINITY : quota.memoryLimitBytes(),
                                    totals.bytesReserved(),
                                    quota.computeQuotaMilli() / 1000.0,
                                    achievedShare(key, filesKey, now, totals.tokensConsumedNs()),
                                    totals.throttledNs(),
                                    totals.deniedAllocs()));
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
        achieved.keySet().retainAll(readings.keySet());
        series.update(readings);
        tenants.update(allocationsByTenant);
    }

    /**
     * Tokens the shim charged per second of wall time since the baseline: the GPU time the container got (the
     * controller calibrates the charge to NVML's measurement). Scrapes closer than
     * {@link #MIN_ACHIEVED_WINDOW_NS} keep the previous value, so a burst of scrapes does not turn noise into
     * a reading.
     */
    private double achievedShare(SeriesKey key, FilesKey files, long now, long tokensNs) {
        AchievedShare previous = achieved.get(key);
        if (previous == null || !previous.files().equals(files) || tokensNs < previous.tokensNs()) {
            achieved.put(key, new AchievedShare(files, now, tokensNs, Double.NaN));
            return Double.NaN;
        }
        long elapsed = now - previous.atNanos();
        if (elapsed < MIN_ACHIEVED_WINDOW_NS) {
            return previous.share();
        }
        double share = (double) (tokensNs - previous.tokensNs()) / elapsed;
        achieved.put(key, new AchievedShare(files, now, tokensNs, share));
        return share;
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
