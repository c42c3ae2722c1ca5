package io.omai.agent.deviceplugin;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.ibvf.model.PciAddress;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Which VFs are handed out, for metrics and for balancing: recorded at Allocate, and compared with what kubelet's
 * PodResources says containers hold (kubelet has no Deallocate). A VF nobody holds is released once it is older than
 * the grace period (kubelet records an allocation only after Allocate returns); one held that we did not record
 * (after an agent restart) is adopted.
 */
final class VfAllocations {
    private final Clock clock;

    @GuardedBy("this")
    private final Map<PciAddress, Instant> allocatedAt = new TreeMap<>();

    private final List<Runnable> listeners = new java.util.concurrent.CopyOnWriteArrayList<>();

    VfAllocations(Clock clock) {
        this.clock = clock;
    }

    void allocated(Collection<PciAddress> vfs) {
        synchronized (this) {
            Instant now = clock.instant();
            vfs.forEach(vf -> allocatedAt.put(vf, now));
        }
        changed();
    }

    /** Runs {@code listener} (outside the lock) after every change of the record. */
    void onChange(Runnable listener) {
        listeners.add(listener);
    }

    private void changed() {
        listeners.forEach(Runnable::run);
    }

    synchronized Set<PciAddress> current() {
        return new TreeSet<>(allocatedAt.keySet());
    }

    /**
     * Makes the record match kubelet's: {@code heldIds} are every device ID of our resource some container holds.
     *
     * @return the VFs released
     */
    List<PciAddress> reconcile(Collection<String> heldIds, Duration releaseGracePeriod) {
        int before;
        List<PciAddress> released;
        int after;
        synchronized (this) {
            before = allocatedAt.size();
            released = reconcileLocked(heldIds, releaseGracePeriod);
            after = allocatedAt.size();
        }
        if (!released.isEmpty() || before != after) {
            changed();
        }
        return released;
    }

    @GuardedBy("this")
    private List<PciAddress> reconcileLocked(Collection<String> heldIds, Duration releaseGracePeriod) {
        Set<PciAddress> held = new TreeSet<>();
        for (String id : heldIds) {
            if (PciAddress.isPciAddress(id)) {
                held.add(PciAddress.of(id));
            }
        }
        Instant now = clock.instant();
        List<PciAddress> released = new ArrayList<>();
        allocatedAt.entrySet().removeIf(entry -> {
            boolean gone = !held.contains(entry.getKey())
                    && entry.getValue().plus(releaseGracePeriod).isBefore(now);
            if (gone) {
                released.add(entry.getKey());
            }
            return gone;
        });
        held.forEach(vf -> allocatedAt.putIfAbsent(vf, now));
        return released;
    }
}
