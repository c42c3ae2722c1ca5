package io.omai.agent.metrics;

import io.grpc.ServerInterceptor;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.FileDescriptorMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.core.instrument.config.MeterFilter;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.quota.shm.MonotonicClock;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.LongConsumer;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's Prometheus metrics: one registry, the binders that read their owners at scrape time, the
 * event-fed meters (gRPC latencies, controller ticks, audit findings) and the health checks behind the probes.
 * Binders are bound against narrow sources ({@link GpuMetricsSource}, {@link AllocationMetricsSource},
 * {@link VfMetricsSource}, {@link KubeletMetricsSource}), so {@code run} and a simulator wire the same code;
 * {@link NodeAgentSources#bind} wires the daemon's.
 *
 * <pre>{@code
 * AgentMetrics metrics = AgentMetrics.create(config.nodeName());
 * MetricsServer server = MetricsServer.start(config.metrics(), metrics);        // probes answer from now on
 * NodeAgent agent = NodeAgent.start(config, metrics.rpcLatency());             // times Allocate & co.
 * NodeAgentSources.bind(metrics, agent, FfmNvmlLibrary.instance(), TenantLookup.UNKNOWN);
 * metrics.health().markStarted();
 * }</pre>
 */
public final class AgentMetrics implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(AgentMetrics.class);

    static final String ALLOCATE_DURATION = "omai.allocate.duration";
    static final String PREFERRED_ALLOCATION_DURATION = "omai.preferred.allocation.duration";
    static final String FIT_DURATION = "omai.fit.duration";
    static final String CONTROLLER_TICK_DURATION = "omai.controller.tick.duration";
    static final String KUBELET_REGISTRATIONS = "omai.kubelet.registrations";
    static final String KUBELET_RESTARTS = "omai.kubelet.restarts";
    static final String LOOP_LAST_PASS_AGE = "omai.loop.last.pass.age";
    static final String REAPER_RECLAIMS = "omai.reaper.reclaims";
    static final String REAPER_RECLAIMED_BYTES = "omai.reaper.reclaimed";

    /** kubelet waits for Allocate during admission; spare files keep it in the low milliseconds. */
    static final List<Duration> ALLOCATE_BUCKETS = millis(1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000);
    /** GetPreferredAllocation is pure computation over the candidate IDs. */
    static final List<Duration> PREFERRED_ALLOCATION_BUCKETS = millis(0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000);
    /** Fit sits in a scheduler's filter/score path for every candidate node: sub-millisecond is the goal. */
    static final List<Duration> FIT_BUCKETS = millis(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000);
    /** A tick must stay well inside the grant period (100 ms by default), or grants arrive late. */
    static final List<Duration> CONTROLLER_TICK_BUCKETS = millis(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250);

    private final PrometheusMeterRegistry registry;
    private final String nodeName;
    private final LongSupplier nanoClock;
    private final HealthChecks health = new HealthChecks();
    private final List<ScrapeRefresh> refreshes = new CopyOnWriteArrayList<>();
    private final List<AllocationMetrics> allocationBinders = new CopyOnWriteArrayList<>();
    // Micrometer holds a function counter's state object weakly; these keep the kubelet sources alive
    private final List<KubeletMetricsSource> kubeletSources = new CopyOnWriteArrayList<>();
    private final List<AutoCloseable> closeables = new CopyOnWriteArrayList<>();
    // Micrometer holds a function counter's state object weakly; these keep the reaper's suppliers alive
    private final List<Object> stateObjects = new CopyOnWriteArrayList<>();
    private final RpcLatencyInterceptor rpcLatency;
    private final Timer controllerTicks;
    private final AuditMetrics audit;
    private final Object scrapeLock = new Object();

    AgentMetrics(String nodeName, LongSupplier nanoClock) {
        if (nodeName == null || nodeName.isBlank()) {
            throw new IllegalArgumentException("node name is empty; GPU series carry it as their node label");
        }
        this.registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        // every series names its node, so series of two agents never merge and joins need no relabelling
        registry.config().commonTags("node", nodeName);
        // ProcessorMetrics' CPU time in "ns" and CPU count named "_count" break Prometheus naming (promtool);
        // process_cpu_usage and the node's own exporters cover both
        registry.config()
                .meterFilter(MeterFilter.deny(id ->
                        id.getName().equals("process.cpu.time") || id.getName().equals("system.cpu.count")));
        this.nodeName = nodeName;
        this.nanoClock = nanoClock;
        this.rpcLatency = new RpcLatencyInterceptor(
                Map.of(
                        DevicePluginGrpc.getAllocateMethod().getFullMethodName(),
                        histogram(ALLOCATE_DURATION, "kubelet Allocate calls", ALLOCATE_BUCKETS),
                        DevicePluginGrpc.getGetPreferredAllocationMethod().getFullMethodName(),
                        histogram(
                                PREFERRED_ALLOCATION_DURATION,
                                "kubelet GetPreferredAllocation calls",
                                PREFERRED_ALLOCATION_BUCKETS),
                        NodeAgentGrpc.getFitMethod().getFullMethodName(),
                        histogram(FIT_DURATION, "Scheduler API Fit calls", FIT_BUCKETS)),
                nanoClock);
        this.controllerTicks = histogram(
                CONTROLLER_TICK_DURATION, "One compute-controller tick over every GPU", CONTROLLER_TICK_BUCKETS);
        this.audit = new AuditMetrics(registry, nodeName, nanoClock, AuditMetrics.DEFAULT_RETENTION);
        refreshes.add(audit);
        BuildInfo.current().register(registry.getPrometheusRegistry(), nodeName);
    }

    /** A registry for the node {@code nodeName} (the {@code node} label of GPU series). */
    public static AgentMetrics create(String nodeName) {
        return new AgentMetrics(nodeName, System::nanoTime);
    }

    public MeterRegistry registry() {
        return registry;
    }

    public String nodeName() {
        return nodeName;
    }

    /** The checks behind {@code /healthz} and {@code /readyz}. */
    public HealthChecks health() {
        return health;
    }

    /**
     * The JVM's and the process's own series: heap and non-heap memory by pool, GC pauses and allocation, threads,
     * CPU, uptime and {@code process_start_time_seconds}, open file descriptors. Only binders an operator of a
     * memory-limited JVM uses; each reads MX beans at scrape time.
     */
    public void bindJvm() {
        new JvmMemoryMetrics().bindTo(registry);
        JvmGcMetrics gc = new JvmGcMetrics();
        gc.bindTo(registry);
        closeables.add(gc);
        new JvmThreadMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new UptimeMetrics().bindTo(registry);
        new FileDescriptorMetrics().bindTo(registry);
    }

    /**
     * The age of every background loop's last completed pass, {@code omai_loop_last_pass_age_seconds{loop}}, read
     * at scrape time.
     */
    public void bindLoops(Supplier<Map<String, Double>> lastPassAges) {
        SeriesSet<String, Double> loops = new SeriesSet<>(
                registry,
                (reg, loop, latest) -> List.of(GpuMetrics.gauge(
                        reg,
                        LOOP_LAST_PASS_AGE,
                        "seconds",
                        "Time since the agent's background loop last completed a pass (its deadline is in "
                                + "docs/operations.md, Background loops)",
                        Tags.of("loop", loop, "node", nodeName),
                        latest,
                        age -> age)));
        refreshes.add(() -> loops.update(lastPassAges.get()));
    }

    /** {@code omai_reaper_reclaims_total} and {@code omai_reaper_reclaimed_bytes_total}, read at scrape time. */
    public void bindReaper(LongSupplier slotsReclaimed, LongSupplier bytesReclaimed) {
        stateObjects.add(slotsReclaimed);
        stateObjects.add(bytesReclaimed);
        FunctionCounter.builder(REAPER_RECLAIMS, slotsReclaimed, LongSupplier::getAsLong)
                .description("Usage-file slots of dead processes the agent's reaper reclaimed since the agent started")
                .tag("node", nodeName)
                .register(registry);
        FunctionCounter.builder(REAPER_RECLAIMED_BYTES, bytesReclaimed, LongSupplier::getAsLong)
                .baseUnit("bytes")
                .description("GPU memory the agent's reaper returned to quotas with those slots since the agent "
                        + "started")
                .tag("node", nodeName)
                .register(registry);
    }

    /** Closes {@code resource} when the metrics close (a binder's reader thread). */
    void closeWith(AutoCloseable resource) {
        closeables.add(resource);
    }

    /** Per-GPU series, read from {@code source} at every scrape. */
    public void bindGpus(GpuMetricsSource source) {
        refreshes.add(new GpuMetrics(registry, source, nodeName));
    }

    /** Per-allocation series and {@code omai_node_tenants}, read from the allocations' files at every scrape. */
    public void bindAllocations(AllocationMetricsSource source) {
        AllocationMetrics binder = new AllocationMetrics(registry, source, nodeName, nanoClock, MonotonicClock::nanos);
        allocationBinders.add(binder);
        refreshes.add(binder);
    }

    /** Per-VF and per-PF series, read from {@code source} at every scrape. */
    public void bindVfs(VfMetricsSource source) {
        refreshes.add(new VfMetrics(registry, source));
    }

    /** The registration and restart counters, read from {@code source} at every scrape. */
    public void bindKubelet(KubeletMetricsSource source) {
        kubeletSources.add(source);
        FunctionCounter.builder(KUBELET_REGISTRATIONS, source, s -> s.registrations())
                .description("Successful registrations of the agent's device plugins with kubelet since the agent "
                        + "started")
                .tag("node", nodeName)
                .register(registry);
        FunctionCounter.builder(KUBELET_RESTARTS, source, s -> s.kubeletRestarts())
                .description("kubelet restarts the agent noticed and re-registered after since it started")
                .tag("node", nodeName)
                .register(registry);
    }

    /**
     * Times Allocate and GetPreferredAllocation (device-plugin server) and Fit (scheduler API server): install it
     * on both servers. Other methods pass through.
     */
    public ServerInterceptor rpcLatency() {
        return rpcLatency;
    }

    /** Takes the duration in nanoseconds of each compute-controller tick. */
    public LongConsumer controllerTickRecorder() {
        return nanos -> controllerTicks.record(nanos, TimeUnit.NANOSECONDS);
    }

    /** Where the NVML audit counts its findings. */
    public AuditMetrics audit() {
        return audit;
    }

    /**
     * Brings every binder's series up to date and renders the registry in the Prometheus text format. A binder
     * whose source fails keeps its previous series (and logs), so one broken owner never empties the scrape.
     * Scrapes are serialised: binders keep state between them (open files, the achieved-share baseline).
     */
    public String scrape() {
        synchronized (scrapeLock) {
            for (ScrapeRefresh refresh : refreshes) {
                try {
                    refresh.refresh();
                } catch (RuntimeException | InternalError e) { // InternalError: a fault in a mapped file
                    log.warn(
                            "event=metrics_refresh_failed binder={} error=\"{}\"",
                            refresh.getClass().getSimpleName(),
                            e.toString(),
                            e);
                }
            }
            return render();
        }
    }

    /**
     * The registry in the Prometheus text format, less the {@code _max} gauge Micrometer adds beside each timer's
     * histogram: one family per histogram, no second family with the same help.
     */
    private String render() {
        Set<String> timerMaxima = new HashSet<>();
        for (Meter meter : registry.getMeters()) {
            if (meter instanceof Timer || meter instanceof DistributionSummary) {
                Meter.Id id = meter.getId();
                timerMaxima.add(registry.config().namingConvention().name(id.getName(), id.getType(), id.getBaseUnit())
                        + "_max");
            }
        }
        String text = registry.scrape();
        StringBuilder kept = new StringBuilder(text.length());
        for (String line : text.split("\n", -1)) {
            if (!timerMaxima.contains(familyOf(line))) {
                kept.append(line).append('\n');
            }
        }
        kept.setLength(Math.max(kept.length() - 1, 0)); // split kept the text's last (empty) piece
        return kept.toString();
    }

    /** The family a line of the text format belongs to: a sample's name, or the name a HELP/TYPE line is about. */
    private static String familyOf(String line) {
        String rest = line.startsWith("# HELP ") || line.startsWith("# TYPE ") ? line.substring(7) : line;
        int end = 0;
        while (end < rest.length() && rest.charAt(end) != ' ' && rest.charAt(end) != '{') {
            end++;
        }
        return rest.substring(0, end);
    }

    /** Unmaps allocation files the binders hold and closes the registry. */
    @Override
    public void close() {
        synchronized (scrapeLock) {
            allocationBinders.forEach(AllocationMetrics::close);
            for (AutoCloseable closeable : closeables) {
                try {
                    closeable.close();
                } catch (Exception e) {
                    log.warn("event=stop_failed owner=metrics resource={} error=\"{}\"", closeable, e.toString(), e);
                }
            }
            registry.close();
        }
    }

    private Timer histogram(String name, String description, List<Duration> buckets) {
        return Timer.builder(name)
                .description(description)
                .serviceLevelObjectives(buckets.toArray(Duration[]::new))
                .register(registry);
    }

    private static List<Duration> millis(double... bounds) {
        return java.util.Arrays.stream(bounds)
                .mapToObj(ms -> Duration.ofNanos(Math.round(ms * 1_000_000)))
                .toList();
    }
}
