package io.omai.agent.metrics;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import java.time.Duration;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.function.LongSupplier;

/**
 * {@code omai_audit_findings_total{finding, namespace, pod, node}}: processes the NVML audit caught on a shared GPU
 * without the shim or beyond their quota, and usage files found tampered with or full. The audit calls {@link #recordViolation} for each finding. A pod's
 * series is removed once it has had no finding for the retention period, so pods that come and go do not
 * accumulate series (Prometheus reads the removal as the end of the series).
 */
public final class AuditMetrics implements ScrapeRefresh {
    static final String FINDINGS = "omai.audit.findings";
    /** How long a pod's series stays after its last finding. */
    public static final Duration DEFAULT_RETENTION = Duration.ofHours(1);

    /** What the audit found; the {@code finding} label, a fixed set so its cardinality is bounded. */
    public enum Reason {
        /** A process uses a shared GPU but the shim is not loaded into it. */
        NO_SHIM("no_shim"),
        /** NVML sees more memory in use than the container's quota. */
        MEMORY_OVER_QUOTA("memory_over_quota"),
        /** NVML sees the container take more GPU time than its compute quota allows. */
        COMPUTE_OVER_QUOTA("compute_over_quota"),
        /** NVML's figures and the shim's report disagree beyond tolerance (the shim may be lying). */
        USAGE_MISREPORTED("usage_misreported"),
        /** The container's usage file contradicts itself or its header: it was tampered with. */
        USAGE_TAMPERED("usage_tampered"),
        /** Every process slot of the container's usage file is taken. */
        SLOTS_EXHAUSTED("slots_exhausted");

        private final String label;

        Reason(String label) {
            this.label = label;
        }

        public String label() {
            return label;
        }
    }

    private record Key(Reason reason, String namespace, String pod) {}

    private record Series(Counter counter, long lastFindingNanos) {}

    private final MeterRegistry registry;
    private final String nodeName;
    private final LongSupplier nanoClock;
    private final long retentionNanos;

    @GuardedBy("this")
    private final Map<Key, Series> series = new LinkedHashMap<>();

    AuditMetrics(MeterRegistry registry, String nodeName, LongSupplier nanoClock, Duration retention) {
        if (retention.isNegative() || retention.isZero()) {
            throw new IllegalArgumentException("audit series retention " + retention + " must be positive");
        }
        this.registry = registry;
        this.nodeName = nodeName;
        this.nanoClock = nanoClock;
        this.retentionNanos = retention.toNanos();
    }

    /**
     * Counts one finding.
     *
     * @param namespace the offending pod's namespace, "" when the process belongs to no known pod
     * @param pod the offending pod's name, "" when unknown
     */
    public synchronized void recordViolation(Reason reason, String namespace, String pod) {
        Objects.requireNonNull(reason, "reason");
        Key key = new Key(reason, Objects.requireNonNullElse(namespace, ""), Objects.requireNonNullElse(pod, ""));
        Series existing = series.get(key);
        Counter counter = existing != null
                ? existing.counter()
                : Counter.builder(FINDINGS)
                        .description(
                                "Findings of the agent's audit by kind: processes on a shared GPU without the shim "
                                        + "or beyond their quota, usage files tampered with or with every slot taken")
                        .tags(
                                "finding",
                                key.reason().label(),
                                "namespace",
                                key.namespace(),
                                "pod",
                                key.pod(),
                                "node",
                                nodeName)
                        .register(registry);
        counter.increment();
        series.put(key, new Series(counter, nanoClock.getAsLong()));
    }

    /** Drops the series of pods without a finding for the retention period. */
    @Override
    public synchronized void refresh() {
        long now = nanoClock.getAsLong();
        Iterator<Series> each = series.values().iterator();
        while (each.hasNext()) {
            Series s = each.next();
            if (now - s.lastFindingNanos() >= retentionNanos) {
                registry.remove(s.counter());
                each.remove();
            }
        }
    }
}
