package io.omai.agent.tenancy;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.MilliGpu;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one owner of reservation state on the node.
 *
 * <p>Every change (reserve, release, consume, expiry) runs under one lock and reads the node's capacity inside
 * it, so two schedulers racing for the last share are serialised: exactly one wins. Readers never take the
 * lock: they see an immutable copy of the reservations, filtered by the clock, so a lease is over the instant
 * it ends even if {@link #expireDue()} has not run yet.
 *
 * <p>Idempotent by key: the same key with the same pod, tenant and containers returns the reservation made
 * first, renewed: its lease ends at now + the request's lease when that is later (never earlier), so a scheduler
 * still binding can keep it alive. The same key with another pod, tenant or containers fails with
 * {@link ReservationException.IdempotencyConflict}. One reservation per pod.
 *
 * <p>Listeners run on the thread that made the change, after the lock is released.
 */
public final class ReservationBook {
    private static final Logger log = LoggerFactory.getLogger(ReservationBook.class);
    private final CapacityModel capacity;
    private final AntiAffinityPolicy policy;
    private final Clock clock;
    private final Object lock = new Object();
    private final List<Runnable> listeners = new CopyOnWriteArrayList<>();

    /** By idempotency key, in creation order. Replaced, never mutated: readers use it without the lock. */
    private volatile Map<String, Reservation> byKey = Map.of();

    private volatile long version;

    /**
     * @param capacity the node's devices and allocations; called under the book's lock, so it must not call
     *     back into this book or wait on anything that does
     */
    public ReservationBook(Supplier<? extends NodeCapacity> capacity, AntiAffinityPolicy policy, Clock clock) {
        this(departed -> capacity.get(), policy, clock);
        Objects.requireNonNull(capacity, "capacity");
    }

    /**
     * @param capacity the node's one capacity model (see {@link CapacityModel}); read under the book's lock, so
     *     it must not call back into this book or wait on anything that does
     */
    public ReservationBook(CapacityModel capacity, AntiAffinityPolicy policy, Clock clock) {
        this.capacity = Objects.requireNonNull(capacity, "capacity");
        this.policy = Objects.requireNonNull(policy, "policy");
        this.clock = Objects.requireNonNull(clock, "clock");
    }

    public AntiAffinityPolicy policy() {
        return policy;
    }

    public Clock clock() {
        return clock;
    }

    /** Grows on every change; lets observers tell whether anything happened. */
    public long version() {
        return version;
    }

    /**
     * Holds devices for a pod, or returns the reservation an equal earlier request made.
     *
     * @throws ReservationException naming the container, device and reason when it cannot be held
     */
    public Reservation reserve(ReservationRequest request) {
        Objects.requireNonNull(request, "request");
        long versionBefore = version;
        try {
            synchronized (lock) {
                Instant now = clock.instant();
                dropExpired(now);
                Reservation existing = byKey.get(request.idempotencyKey());
                if (existing != null) {
                    if (existing.request().sameAssignment(request)) {
                        return renewed(existing, request, now);
                    }
                    throw new ReservationException.IdempotencyConflict("idempotency key '"
                            + request.idempotencyKey() + "' was used for a different reservation ("
                            + existing.request().firstDifference(request) + "); use a new key, or release '"
                            + request.idempotencyKey() + "' first");
                }
                refuseSecondReservationForPod(request);
                NodeUsage usage = NodeUsage.of(capacity.read(Set.of()), byKey.values());
                List<ContainerReservation> resolved = holdAll(request, usage);
                refuseAmbiguousAdmission(request); // after tenancy and capacity, whose reasons say more
                Reservation made = new Reservation(request, resolved, now, now.plus(request.lease()));
                var next = new LinkedHashMap<>(byKey);
                next.put(request.idempotencyKey(), made);
                publish(next);
                return made;
            }
        } finally {
            // also after a refusal: leases that ended on the way in must still reach watchers
            notifyIfChangedSince(versionBefore);
        }
    }

    /** Caller holds the lock. The reservation with its lease extended to now + the request's, if that is later. */
    @GuardedBy("lock")
    private Reservation renewed(Reservation existing, ReservationRequest request, Instant now) {
        Instant until = now.plus(request.lease());
        if (!until.isAfter(existing.expiresAt())) {
            return existing;
        }
        Reservation renewed = new Reservation(existing.request(), existing.containers(), existing.createdAt(), until);
        var next = new LinkedHashMap<>(byKey);
        next.put(existing.idempotencyKey(), renewed);
        publish(next);
        log.info(
                "event=reservation_renewed key='{}' pod={} tenant={} expires_at={} was={}",
                existing.idempotencyKey(),
                existing.podUid(),
                existing.tenant(),
                until,
                existing.expiresAt());
        return renewed;
    }

    private void refuseSecondReservationForPod(ReservationRequest request) {
        for (Reservation other : byKey.values()) {
            if (other.podUid().equals(request.podUid())) {
                throw new ReservationException.PodAlreadyReserved("pod " + request.podUid()
                        + " already holds reservation '" + other.idempotencyKey() + "' until " + other.expiresAt()
                        + "; release it before reserving again");
            }
        }
    }

    /**
     * Refuses a reservation that would leave two tenants' pods pending with containers of one size on this node:
     * kubelet's Allocate names no pod, so the agent could not tell at admission which of them kubelet is admitting
     * and would have to refuse both. Refused here instead, retryably, before the scheduler binds the second pod;
     * once the first reservation is consumed by its Allocate (or released) the second goes through.
     */
    @GuardedBy("lock")
    private void refuseAmbiguousAdmission(ReservationRequest request) {
        if (policy == AntiAffinityPolicy.NONE) {
            return;
        }
        for (Reservation other : byKey.values()) {
            if (other.tenant().equals(request.tenant())) {
                continue;
            }
            for (ContainerReservation mine : request.containers()) {
                for (ContainerReservation theirs : other.request().containers()) {
                    if (mine.milli() > 0 && mine.milli() == theirs.milli()) {
                        throw new ReservationException.AdmissionWouldBeAmbiguous("containers '" + mine.name()
                                + "' (" + mine.milli() + " milli) of tenant " + request.tenant()
                                + " cannot be told apart at admission from containers '" + theirs.name()
                                + "' of tenant " + other.tenant() + " in reservation '" + other.idempotencyKey()
                                + "' (pod " + other.podUid() + "), not yet admitted; retry after it is admitted or"
                                + " expires at " + other.expiresAt());
                    }
                }
            }
        }
    }

    /** Checks every container against the usage, adding each to it so later containers see earlier ones. */
    private List<ContainerReservation> holdAll(ReservationRequest request, NodeUsage usage) {
        var resolved = new ArrayList<ContainerReservation>(request.containers().size());
        for (int i = 0; i < request.containers().size(); i++) {
            ContainerReservation container = request.containers().get(i);
            String where = "containers[" + i + "] ('" + container.name() + "')";
            for (String uuid : container.gpuUuids()) {
                GpuUsage gpu = usage.gpu(uuid)
                        .orElseThrow(() -> new ReservationException.UnknownDevice(
                                where + ": node " + usage.nodeName() + " has no GPU " + uuid));
                if (!gpu.gpu().healthy()) {
                    throw new ReservationException.UnhealthyDevice(where + ": GPU " + uuid + " is unhealthy");
                }
                long memory = container.memoryBytes() > 0
                        ? container.memoryBytes()
                        : MilliGpu.defaultMemory(container.milli(), gpu.gpu().memoryBytes());
                // the tenant refusal first: when both refuse, freeing capacity would not help, so say why not
                String tenant = request.tenant();
                policy.refusal(tenant, uuid, gpu.tenants(), usage.nodeName(), usage.nodeTenants())
                        .ifPresent(refusal -> {
                            throw new ReservationException.AntiAffinityViolation(where + ": " + refusal);
                        });
                String shortfall = gpu.capacityShortfall(container.milliPerGpu(), memory);
                if (shortfall != null) {
                    throw new ReservationException.InsufficientCapacity(where + ": GPU " + uuid + ": " + shortfall);
                }
                usage.hold(tenant, uuid, container.milliPerGpu(), memory);
            }
            for (String vf : container.vfIds()) {
                if (!usage.knowsVf(vf)) {
                    throw new ReservationException.UnknownDevice(
                            where + ": node " + usage.nodeName() + " has no VF " + vf);
                }
                if (!usage.freeVfIds().contains(vf)) {
                    throw new ReservationException.InsufficientCapacity(
                            where + ": VF " + vf + " is allocated or reserved");
                }
                usage.holdVf(vf);
            }
            resolved.add(container.milli() == 0 ? container : container.withMemory(resolvedMemory(container, usage)));
        }
        return resolved;
    }

    /**
     * The memory per GPU recorded for a container. With whole GPUs of different sizes and no explicit amount,
     * the smallest card's memory: the quota every one of its GPUs can give.
     */
    private static long resolvedMemory(ContainerReservation container, NodeUsage usage) {
        if (container.memoryBytes() > 0) {
            return container.memoryBytes();
        }
        return container.gpuUuids().stream()
                .map(uuid -> usage.gpu(uuid).orElseThrow().gpu().memoryBytes())
                .mapToLong(card -> MilliGpu.defaultMemory(container.milli(), card))
                .min()
                .orElse(0);
    }

    public Optional<Reservation> releaseByKey(String idempotencyKey) {
        return remove(reservation -> reservation.idempotencyKey().equals(idempotencyKey));
    }

    public Optional<Reservation> releaseByPod(String podUid) {
        return remove(reservation -> reservation.podUid().equals(podUid));
    }

    /**
     * Hands the pod's reservation to whoever turns it into an allocation (kubelet's Allocate, issue #7) and drops
     * it. {@code recordAllocation} runs under the book's lock, before the reservation stops counting, so no
     * concurrent reserve can see the capacity free in between. If it throws, the reservation stays.
     *
     * @throws ReservationException.NoSuchReservation if the pod has no live reservation
     */
    public Reservation consume(String podUid, Consumer<Reservation> recordAllocation) {
        long versionBefore = version;
        try {
            synchronized (lock) {
                dropExpired(clock.instant());
                Reservation consumed = byKey.values().stream()
                        .filter(r -> r.podUid().equals(podUid))
                        .findFirst()
                        .orElseThrow(() -> new ReservationException.NoSuchReservation(
                                "pod " + podUid + " has no live reservation (never made, released or expired)"));
                recordAllocation.accept(consumed);
                var next = new LinkedHashMap<>(byKey);
                next.remove(consumed.idempotencyKey());
                publish(next);
                return consumed;
            }
        } finally {
            notifyIfChangedSince(versionBefore);
        }
    }

    /**
     * Hands one container of the pod's reservation to kubelet's Allocate for that container (kubelet allocates
     * container by container): {@code which} picks the container among those not yet consumed (first match in
     * request order), {@code recordAllocation} records it under the book's lock, and then only that container
     * stops counting; the reservation goes when its last container is consumed. If {@code recordAllocation}
     * throws, nothing changes.
     *
     * @throws ReservationException.NoSuchReservation if the pod has no live reservation or none of its remaining
     *     containers matches
     */
    public ContainerReservation consumeContainer(
            String podUid,
            Predicate<ContainerReservation> which,
            java.util.function.BiConsumer<Reservation, ContainerReservation> recordAllocation) {
        long versionBefore = version;
        try {
            synchronized (lock) {
                dropExpired(clock.instant());
                Reservation reservation = byKey.values().stream()
                        .filter(r -> r.podUid().equals(podUid))
                        .findFirst()
                        .orElseThrow(() -> new ReservationException.NoSuchReservation(
                                "pod " + podUid + " has no live reservation (never made, released or expired)"));
                ContainerReservation container = reservation.containers().stream()
                        .filter(which)
                        .findFirst()
                        .orElseThrow(() -> new ReservationException.NoSuchReservation("reservation '"
                                + reservation.idempotencyKey() + "' of pod " + podUid + " has no remaining "
                                + "container that matches; remaining: " + reservation.containers()));
                recordAllocation.accept(reservation, container);
                var remaining = new ArrayList<>(reservation.containers());
                remaining.remove(container);
                var next = new LinkedHashMap<>(byKey);
                if (remaining.isEmpty()) {
                    next.remove(reservation.idempotencyKey());
                } else {
                    next.put(
                            reservation.idempotencyKey(),
                            new Reservation(
                                    reservation.request(),
                                    remaining,
                                    reservation.createdAt(),
                                    reservation.expiresAt()));
                }
                publish(next);
                return container;
            }
        } finally {
            notifyIfChangedSince(versionBefore);
        }
    }

    /**
     * Runs {@code ledgerChange} under the book's lock with the live reservations, for allocations made without
     * a reservation (pods placed by a stock kube-scheduler). The ledger can check the request against
     * {@link NodeUsage#of} the node and these reservations (capacity, {@link AntiAffinityPolicy#refusal}) and
     * record the allocation before any Reserve reads the node's capacity again, so reserved capacity is never
     * handed out twice. Like the capacity supplier, {@code ledgerChange} must not call back into the book.
     */
    public <T> T atomically(Function<List<Reservation>, T> ledgerChange) {
        long versionBefore = version;
        try {
            synchronized (lock) {
                dropExpired(clock.instant());
                return ledgerChange.apply(List.copyOf(byKey.values()));
            }
        } finally {
            notifyIfChangedSince(versionBefore);
        }
    }

    /**
     * Runs an admission under the book's lock: {@code change} reads the node through {@link Admission#usage} (the
     * same capacity model Reserve reads) and may consume reserved containers. Its consumptions are published when
     * it returns and dropped when it throws, so an admission refused half way leaves the book as it was. Like the
     * capacity model, {@code change} must not call back into the book, and must do no disk work (it holds off
     * every Reserve).
     */
    public <T> T admit(Function<Admission, T> change) {
        long versionBefore = version;
        try {
            synchronized (lock) {
                dropExpired(clock.instant());
                Admission admission = new Admission(new LinkedHashMap<>(byKey));
                T result = change.apply(admission);
                if (admission.changed) {
                    publish(admission.working);
                }
                return result;
            }
        } finally {
            notifyIfChangedSince(versionBefore);
        }
    }

    /** The book as one admission sees it, valid only inside {@link #admit}. */
    public final class Admission {
        private final Map<String, Reservation> working;
        private boolean changed;

        private Admission(Map<String, Reservation> working) {
            this.working = working;
        }

        /** The live reservations, less the containers this admission consumed so far. */
        public List<Reservation> reservations() {
            return List.copyOf(working.values());
        }

        /** The node's load: allocations (less {@code departed}, see {@link CapacityModel#read}) plus reservations. */
        public NodeUsage usage(Set<String> departed) {
            return NodeUsage.of(capacity.read(departed), working.values());
        }

        /**
         * Consumes {@code container} of the pod's reservation; the reservation goes with its last container.
         *
         * @throws ReservationException.NoSuchReservation if the pod has no live reservation with that container
         */
        public void consume(String podUid, ContainerReservation container) {
            Reservation reservation = working.values().stream()
                    .filter(r -> r.podUid().equals(podUid))
                    .findFirst()
                    .orElseThrow(() -> new ReservationException.NoSuchReservation(
                            "pod " + podUid + " has no live reservation (never made, released or expired)"));
            var remaining = new ArrayList<>(reservation.containers());
            if (!remaining.remove(container)) {
                throw new ReservationException.NoSuchReservation("reservation '" + reservation.idempotencyKey()
                        + "' of pod " + podUid + " has no remaining container '" + container.name() + "' of "
                        + container.milli() + " milli on " + container.gpuUuids() + "; remaining: "
                        + reservation.containers());
            }
            if (remaining.isEmpty()) {
                working.remove(reservation.idempotencyKey());
            } else {
                working.put(
                        reservation.idempotencyKey(),
                        new Reservation(
                                reservation.request(), remaining, reservation.createdAt(), reservation.expiresAt()));
            }
            changed = true;
        }
    }

    private Optional<Reservation> remove(Predicate<Reservation> which) {
        long versionBefore = version;
        try {
            synchronized (lock) {
                dropExpired(clock.instant());
                Optional<Reservation> removed =
                        byKey.values().stream().filter(which).findFirst();
                removed.ifPresent(reservation -> {
                    var next = new LinkedHashMap<>(byKey);
                    next.remove(reservation.idempotencyKey());
                    publish(next);
                });
                return removed;
            }
        } finally {
            notifyIfChangedSince(versionBefore);
        }
    }

    /** Drops reservations whose lease has ended and tells listeners. Run periodically (or at {@link #nextExpiry}). */
    public List<Reservation> expireDue() {
        long versionBefore = version;
        try {
            synchronized (lock) {
                Instant now = clock.instant();
                List<Reservation> expired =
                        byKey.values().stream().filter(r -> !r.isLiveAt(now)).toList();
                dropExpired(now);
                return expired;
            }
        } finally {
            notifyIfChangedSince(versionBefore);
        }
    }

    /** When the next lease ends, if any reservation is outstanding. */
    public Optional<Instant> nextExpiry() {
        return byKey.values().stream().map(Reservation::expiresAt).min(Comparator.naturalOrder());
    }

    /** Live reservations in creation order. Lock-free. */
    public List<Reservation> outstanding() {
        Instant now = clock.instant();
        return byKey.values().stream().filter(r -> r.isLiveAt(now)).toList();
    }

    public Optional<Reservation> forPod(String podUid) {
        return outstanding().stream().filter(r -> r.podUid().equals(podUid)).findFirst();
    }

    public Optional<Reservation> forKey(String idempotencyKey) {
        Reservation reservation = byKey.get(idempotencyKey);
        return reservation != null && reservation.isLiveAt(clock.instant())
                ? Optional.of(reservation)
                : Optional.empty();
    }

    /** Runs {@code listener} after every change. */
    public Subscription onChange(Runnable listener) {
        listeners.add(Objects.requireNonNull(listener, "listener"));
        return () -> listeners.remove(listener);
    }

    /** Caller holds the lock. */
    @GuardedBy("lock")
    private void dropExpired(Instant now) {
        Map<String, Reservation> current = byKey;
        if (current.values().stream().allMatch(r -> r.isLiveAt(now))) {
            return;
        }
        var next = new LinkedHashMap<String, Reservation>();
        current.forEach((key, reservation) -> {
            if (reservation.isLiveAt(now)) {
                next.put(key, reservation);
            }
        });
        publish(next);
    }

    /** Caller holds the lock. */
    // version's writers all hold the lock; volatile only lets readers see it without the lock
    @SuppressWarnings("NonAtomicVolatileUpdate")
    @GuardedBy("lock")
    private void publish(Map<String, Reservation> next) {
        byKey = Collections.unmodifiableMap(next);
        version++;
    }

    /**
     * Tells listeners when the version moved since {@code before}. Called outside the lock; a concurrent change
     * may be reported by both callers, which listeners tolerate (they re-read state, they do not count).
     */
    private void notifyIfChangedSince(long before) {
        if (version != before) {
            notifyListeners();
        }
    }

    private void notifyListeners() {
        for (Runnable listener : listeners) {
            try {
                listener.run();
            } catch (RuntimeException e) {
                // one broken observer must not stop the others or fail the change that already happened
                log.warn("reservation change listener {} failed", listener, e);
            }
        }
    }
}
