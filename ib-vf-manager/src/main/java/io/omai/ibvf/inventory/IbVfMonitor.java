package io.omai.ibvf.inventory;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.ibvf.discovery.SysfsDiscovery;
import io.omai.ibvf.error.IbVfException;
import io.omai.ibvf.health.DesiredVfState;
import io.omai.ibvf.health.VfHealthEvaluator;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.model.VirtualFunction;
import io.omai.ibvf.qos.QosCapability;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Continuous rediscovery: each {@link #poll()} reads sysfs afresh, evaluates health and notifies listeners when the
 * set of VFs or any VF's health differs from the previous poll. Polling (rather than uevents) keeps the kernel
 * interface narrow; {@link #start} runs it on a schedule, tests call {@link #poll()} directly.
 */
public final class IbVfMonitor implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(IbVfMonitor.class);

    private final SysfsDiscovery discovery;
    private final VfHealthEvaluator health;
    private final BiFunction<PhysicalFunction, VirtualFunction, DesiredVfState> desiredState;
    private final Object lock = new Object();

    @GuardedBy("lock")
    private final Set<IbVfListener> listeners = Collections.newSetFromMap(new IdentityHashMap<>());

    @GuardedBy("lock")
    private InventorySnapshot current = InventorySnapshot.EMPTY;

    @GuardedBy("lock")
    private boolean polledOnce;

    private ScheduledFuture<?> schedule;

    public IbVfMonitor(
            SysfsDiscovery discovery,
            VfHealthEvaluator health,
            BiFunction<PhysicalFunction, VirtualFunction, DesiredVfState> desiredState) {
        this.discovery = discovery;
        this.health = health;
        this.desiredState = desiredState;
    }

    /** Registers a listener; it is told the current inventory at once (if one was polled), then every change. */
    public AutoCloseable subscribe(IbVfListener listener) {
        InventorySnapshot first;
        synchronized (lock) {
            listeners.add(listener);
            first = polledOnce ? current : null;
        }
        if (first != null) {
            listener.onInventoryChanged(first);
        }
        return () -> {
            synchronized (lock) {
                listeners.remove(listener);
            }
        };
    }

    /** The inventory as of the last successful poll. */
    public InventorySnapshot current() {
        synchronized (lock) {
            return current;
        }
    }

    /** Rediscovers once; notifies listeners if VFs or health changed. Returns the (possibly unchanged) inventory. */
    public InventorySnapshot poll() {
        InventorySnapshot next;
        try {
            next = discoverNow();
        } catch (IbVfException failure) {
            log.warn("IB VF rediscovery failed, keeping the previous inventory: {}", failure.getMessage());
            listenersNow().forEach(listener -> listener.onDiscoveryFailed(failure));
            return current();
        }
        boolean changed;
        synchronized (lock) {
            changed = !polledOnce || !next.healthByVf().equals(current.healthByVf());
            current = next;
            polledOnce = true;
        }
        if (changed) {
            log.info(
                    "IB VF inventory changed: {} VFs, {} healthy",
                    next.vfs().size(),
                    next.vfs().stream().filter(vf -> vf.health().isHealthy()).count());
            listenersNow().forEach(listener -> listener.onInventoryChanged(next));
        }
        return next;
    }

    /** Polls every {@code interval} on {@code executor} until {@link #close()}. */
    public void start(ScheduledExecutorService executor, Duration interval) {
        synchronized (lock) {
            if (schedule != null) {
                throw new IllegalStateException("monitor already started");
            }
            schedule = executor.scheduleWithFixedDelay(this::pollSafely, 0, interval.toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    @Override
    public void close() {
        synchronized (lock) {
            if (schedule != null) {
                schedule.cancel(false);
                schedule = null;
            }
        }
    }

    private void pollSafely() {
        try {
            poll();
        } catch (RuntimeException unexpected) {
            // a listener's bug must not stop rediscovery for everyone
            log.error("IB VF monitor poll failed", unexpected);
        }
    }

    private InventorySnapshot discoverNow() {
        List<PfStatus> pfs = new ArrayList<>();
        for (PhysicalFunction pf : discovery.discover()) {
            List<VfStatus> vfs = new ArrayList<>();
            for (VirtualFunction vf : pf.vfs()) {
                vfs.add(new VfStatus(vf, health.evaluate(pf, vf, desiredState.apply(pf, vf))));
            }
            pfs.add(new PfStatus(pf, QosCapability.of(pf.linkLayer()), vfs));
        }
        return new InventorySnapshot(pfs);
    }

    private List<IbVfListener> listenersNow() {
        synchronized (lock) {
            return List.copyOf(listeners);
        }
    }
}
