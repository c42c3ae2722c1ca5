package io.omai.agent.tenancy;

import io.omai.agent.gpu.GpuHealth;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * GPUs the device-plugin path must not hand out although the agent discovered them, with the reason: GPUs that
 * kubelet also reports as another plugin's devices ({@code nvidia.com/gpu}), which two plugins would otherwise hand
 * to two pods, and GPUs holding DRA claims (one GPU, one path). Each source replaces its own set; a GPU is
 * withdrawn while any source names it. Withdrawn GPUs are advertised Unhealthy, never offered by
 * GetPreferredAllocation and refused by Allocate. Thread-safe; listeners run on the thread that made the change.
 */
public final class GpuWithdrawals {
    private static final Logger log = LoggerFactory.getLogger(GpuWithdrawals.class);
    /** The source of {@link #replace(Map)}: GPUs another plugin hands out. */
    public static final String OTHER_PLUGIN = "other-plugin";
    /** The source of GPUs that hold DRA claims. */
    public static final String DRA = "dra";

    private volatile Map<String, String> reasons = Map.of();
    private final Map<String, Map<String, String>> bySource = new java.util.TreeMap<>();
    private final List<Runnable> listeners = new CopyOnWriteArrayList<>();

    /** Replaces the withdrawn set of {@link #OTHER_PLUGIN} (GPU UUID → reason). */
    public void replace(Map<String, String> withdrawn) {
        replace(OTHER_PLUGIN, withdrawn);
    }

    /** Replaces one source's withdrawn set (GPU UUID → reason); listeners hear of it when the union changed. */
    public void replace(String source, Map<String, String> withdrawn) {
        Map<String, String> before;
        Map<String, String> next;
        synchronized (this) {
            bySource.put(source, Map.copyOf(withdrawn));
            Map<String, String> union = new java.util.TreeMap<>();
            bySource.values()
                    .forEach(set -> set.forEach((uuid, reason) -> union.merge(uuid, reason, (a, b) -> a + "; " + b)));
            next = Map.copyOf(union);
            before = reasons;
            if (before.equals(next)) {
                return;
            }
            reasons = next;
        }
        next.forEach((uuid, reason) -> {
            if (!reason.equals(before.get(uuid))) {
                log.warn("event=gpu_withdrawn gpu={} reason=\"{}\"", uuid, reason);
            }
        });
        before.keySet().stream()
                .filter(uuid -> !next.containsKey(uuid))
                .forEach(
                        uuid -> log.info("event=gpu_restored gpu={} detail=\"no source withdraws it any more\"", uuid));
        listeners.forEach(Runnable::run);
    }

    /** One source's withdrawn GPUs (GPU UUID → reason). */
    public synchronized Map<String, String> of(String source) {
        return bySource.getOrDefault(source, Map.of());
    }

    public Map<String, String> current() {
        return reasons;
    }

    public Optional<String> reason(String gpuUuid) {
        return Optional.ofNullable(reasons.get(gpuUuid));
    }

    public boolean isWithdrawn(String gpuUuid) {
        return reasons.containsKey(gpuUuid);
    }

    /** GPU health as advertised: the monitor's, with withdrawn GPUs unhealthy for their withdrawal's reason. */
    public Map<String, GpuHealth> overlay(Map<String, GpuHealth> health) {
        Map<String, String> withdrawn = reasons;
        if (withdrawn.isEmpty()) {
            return health;
        }
        Map<String, GpuHealth> advertised = new java.util.LinkedHashMap<>(health);
        withdrawn.forEach((uuid, reason) -> advertised.put(uuid, GpuHealth.unhealthy(uuid, "withdrawn: " + reason)));
        return advertised;
    }

    public Subscription onChange(Runnable listener) {
        listeners.add(Objects.requireNonNull(listener, "listener"));
        return () -> listeners.remove(listener);
    }
}
