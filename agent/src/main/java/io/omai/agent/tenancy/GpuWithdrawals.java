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
 * GPUs the agent must not hand out although it discovered them, with the reason: today, GPUs that kubelet
 * also reports as another plugin's devices ({@code nvidia.com/gpu}), which two plugins would otherwise hand to
 * two pods. Withdrawn GPUs are advertised Unhealthy, never offered by GetPreferredAllocation and refused by
 * Allocate. Thread-safe; listeners run on the thread that made the change.
 */
public final class GpuWithdrawals {
    private static final Logger log = LoggerFactory.getLogger(GpuWithdrawals.class);

    private volatile Map<String, String> reasons = Map.of();
    private final List<Runnable> listeners = new CopyOnWriteArrayList<>();

    /** Replaces the withdrawn set (GPU UUID → reason); listeners hear of it when it changed. */
    public void replace(Map<String, String> withdrawn) {
        Map<String, String> next = Map.copyOf(withdrawn);
        Map<String, String> before;
        synchronized (this) {
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
                .forEach(uuid ->
                        log.info("event=gpu_restored gpu={} detail=\"no longer reported by another plugin\"", uuid));
        listeners.forEach(Runnable::run);
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
