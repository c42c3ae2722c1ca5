package io.omai.agent.metrics;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * The meters of things that come and go (allocations, GPUs, VFs, tenants), one group per key. Each
 * {@link #update} registers meters for new keys and removes those of keys that are gone, so the registry's
 * cardinality follows the node's current state instead of growing with its history.
 *
 * <p>Meters read the latest value of their key through a {@link Latest} holder that this set keeps reachable
 * (Micrometer holds gauge and function-counter state objects weakly).
 *
 * @param <K> identifies one group of series; equal keys must mean equal label values
 * @param <V> what the meters of a group read
 */
final class SeriesSet<K, V> {
    /** The latest reading of one key; meters read it at scrape time. */
    static final class Latest<V> {
        private volatile V value;

        Latest(V value) {
            this.value = value;
        }

        V get() {
            return value;
        }
    }

    /** Registers the meters of one key, each reading {@code latest}. */
    @FunctionalInterface
    interface MeterGroup<K, V> {
        List<Meter> register(MeterRegistry registry, K key, Latest<V> latest);
    }

    private record Group<V>(Latest<V> latest, List<Meter> meters) {}

    private final MeterRegistry registry;
    private final MeterGroup<K, V> meterGroup;

    @GuardedBy("this")
    private final Map<K, Group<V>> groups = new HashMap<>();

    SeriesSet(MeterRegistry registry, MeterGroup<K, V> meterGroup) {
        this.registry = registry;
        this.meterGroup = meterGroup;
    }

    /** Makes the registry hold exactly the series of {@code current}, each reading its value there. */
    synchronized void update(Map<K, V> current) {
        Iterator<Map.Entry<K, Group<V>>> existing = groups.entrySet().iterator();
        while (existing.hasNext()) {
            Map.Entry<K, Group<V>> group = existing.next();
            if (!current.containsKey(group.getKey())) {
                group.getValue().meters().forEach(registry::remove);
                existing.remove();
            }
        }
        current.forEach((key, value) -> {
            Group<V> group = groups.get(key);
            if (group != null) {
                group.latest().value = value;
            } else {
                Latest<V> latest = new Latest<>(value);
                groups.put(key, new Group<>(latest, new ArrayList<>(meterGroup.register(registry, key, latest))));
            }
        });
    }
}
