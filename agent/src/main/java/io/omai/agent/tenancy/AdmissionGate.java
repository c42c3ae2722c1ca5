package io.omai.agent.tenancy;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationClaim;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.MilliGpu;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Tenancy at kubelet admission: decides, for the GetPreferredAllocation and Allocate calls of one container,
 * which pod it is for, and re-checks every decision before the ledger records it.
 *
 * <ul>
 *   <li>A pod with a scheduler's reservation gets exactly the reserved GPUs: GetPreferredAllocation returns IDs
 *       on them, Allocate accepts only IDs on them and consumes that container of the reservation (the memory
 *       quota comes from it).</li>
 *   <li>A pod without one (a stock kube-scheduler placed it) is identified as kubelet admits
 *       ({@link AdmittedPodFinder}): the node's pods
 *       one at a time, oldest first. Among the pending pods whose next milli-GPU container asks for this size,
 *       the oldest is the one; when the oldest are several pods of different tenants it refuses rather than
 *       guess. Its devices are checked against the anti-affinity policy and against capacity other pods'
 *       reservations hold, inside the reservation book's lock.</li>
 *   <li>Withdrawn GPUs (another plugin hands them out) are never offered nor allocated.</li>
 *   <li>Without the Kubernetes API ({@link NodePods#NONE}) a pod without a reservation cannot be identified: it
 *       is allocated as an unknown pod, checked against capacity but not against tenants. Anti-affinity then
 *       holds only for reserved pods, which are never placed beside an unknown pod.</li>
 * </ul>
 *
 * <p>One Allocate is all or nothing: validated as a whole, files made outside every lock, then every check and
 * record in one step under the book's lock ({@link ReservationBook#admit}), reading the same capacity model as
 * Reserve ({@link CapacityModel}). Allocations holding IDs kubelet hands out (or offers) again belong to departed
 * containers and count for nothing (docs/architecture.md, "How an allocation happens").
 *
 * <p>Never blocks for long: the only wait is for the pod informer to show a pod kubelet already admits
 * ({@code identifyWait}, bounded).
 */
public final class AdmissionGate {
    private static final Logger log = LoggerFactory.getLogger(AdmissionGate.class);
    private static final String WITHDRAWN = "withdrawn: ";

    private final String nodeName;
    private final AllocationLedger ledger;
    private final ReservationBook book;
    private final GpuWithdrawals withdrawals;
    private final AdmittedPodFinder finder;
    private final NodePods pods;
    private volatile ClusterEvents events = ClusterEvents.NONE;

    /**
     * @param pods this node's pods as the API shows them ({@link NodePods#NONE} without the Kubernetes API)
     * @param identifyWait how long to wait for the informer to show the pod being admitted
     */
    public AdmissionGate(
            String nodeName,
            AllocationLedger ledger,
            ReservationBook book,
            NodePods pods,
            GpuWithdrawals withdrawals,
            Duration identifyWait) {
        this.nodeName = Objects.requireNonNull(nodeName, "nodeName");
        this.ledger = Objects.requireNonNull(ledger, "ledger");
        this.book = Objects.requireNonNull(book, "book");
        this.withdrawals = Objects.requireNonNull(withdrawals, "withdrawals");
        this.pods = Objects.requireNonNull(pods, "pods");
        this.finder = new AdmittedPodFinder(nodeName, ledger, book, pods, identifyWait, () -> events);
    }

    /** Where refusals are reported as pod events (none until set). */
    public void reportTo(ClusterEvents clusterEvents) {
        this.events = Objects.requireNonNull(clusterEvents, "clusterEvents");
    }

    public AntiAffinityPolicy policy() {
        return book.policy();
    }

    /**
     * The IDs kubelet should allocate for the container being admitted: the reserved ones, or the ledger's
     * choice among the candidates on GPUs the pod's tenant may use and that reservations leave free.
     */
    public List<MilliGpuId> preferredAllocation(Collection<String> available, Collection<String> mustInclude, int size)
            throws LedgerException, AdmissionRefusal {
        // the ledger validates the IDs and the size first, so a malformed request is INVALID_ARGUMENT as before
        ledger.preferredAllocation(available, mustInclude, size);
        Admitted who = finder.find(size, Set.of());
        if (who.reservation().isPresent()) {
            return reservedIds(who, who.reservation().get(), available, mustInclude, size);
        }
        Map<String, String> excluded = new TreeMap<>();
        List<String> allowed = allowedCandidates(who, available, excluded);
        try {
            return ledger.preferredAllocation(allowed, mustInclude, size);
        } catch (LedgerException.NoFit noFit) {
            if (excluded.isEmpty()) {
                throw noFit;
            }
            String why = who.describe() + ": " + noFit.getMessage() + "; GPUs this pod may not use: " + excluded;
            log.warn(
                    "event=preferred_allocation_refused pod={}/{} tenant={} size={} excluded=\"{}\"",
                    who.namespace(),
                    who.pod(),
                    who.tenant(),
                    size,
                    excluded);
            if (excluded.values().stream().allMatch(reason -> reason.startsWith(WITHDRAWN))) {
                throw new AdmissionRefusal.Withdrawn(why);
            }
            throw new AdmissionRefusal.AntiAffinity(why);
        }
    }

    /** Checks the IDs' shape as the ledger would, without identifying the pod or recording anything. */
    public void checkAllocatable(Collection<String> deviceIds) throws LedgerException {
        ledger.checkAllocatable(deviceIds);
    }

    /**
     * Records the allocation of these IDs for the pod being admitted, after checking them against its
     * reservation or, without one, against the anti-affinity policy and other reservations. A repeat of an
     * Allocate already recorded returns that allocation.
     */
    public Allocation allocate(Collection<String> deviceIds) throws LedgerException, AdmissionRefusal {
        return allocateAll(List.of(List.copyOf(deviceIds))).getFirst();
    }

    /**
     * One Allocate request of one or more containers, all or nothing: the request is validated as a whole
     * (bounded size, each container's IDs, no ID in two containers), each container is identified and its files
     * made, then every check and every record happens in one step under the reservation book's lock. A refusal
     * of any container leaves the ledger and the book as they were.
     *
     * <p>IDs that belong to a recorded allocation belong to a departed container (kubelet hands out only IDs it
     * considers free: a departed pod's, or an init container's to the app containers of its pod). Such an
     * allocation does not count against capacity or tenancy; it is released, all of it, when the new one is
     * recorded.
     */
    public List<Allocation> allocateAll(List<? extends Collection<String>> containers)
            throws LedgerException, AdmissionRefusal {
        validateRequest(containers);
        List<Plan> plans = new ArrayList<>(containers.size());
        for (Collection<String> ids : containers) {
            plans.add(plan(List.copyOf(ids)));
        }
        List<AllocationLedger.Pending> pending = new ArrayList<>(plans.size());
        try {
            for (Plan plan : plans) {
                pending.add(
                        plan.takenOver().isPresent()
                                ? ledger.prepareTakeover(plan.deviceIds(), plan.claim())
                                : ledger.prepare(plan.deviceIds(), plan.claim()));
            }
            Object outcome;
            try {
                outcome = book.admit(admission -> admitInOneStep(admission, plans, pending));
            } catch (Refused refused) {
                Plan plan = refused.plan;
                if (plan.who() != null) {
                    log.warn(
                            "event=admission_refused pod={}/{} container={} tenant={} gpus={} reason=\"{}\"",
                            plan.who().namespace(),
                            plan.who().pod(),
                            plan.who().container(),
                            plan.who().tenant(),
                            plan.gpus(),
                            refused.refusal.getMessage());
                    report(plan.who(), refused.refusal);
                }
                throw refused.refusal;
            } catch (LedgerFailure failure) {
                throw failure.cause;
            }
            @SuppressWarnings("unchecked")
            List<Allocation> made = (List<Allocation>) outcome;
            for (int i = 0; i < plans.size(); i++) {
                Plan plan = plans.get(i);
                if (plan.who() != null) {
                    log.info(
                            "event=admitted pod={}/{} container={} tenant={} gpus={} allocation={} reservation={} "
                                    + "policy={}",
                            plan.who().namespace(),
                            plan.who().pod(),
                            plan.claim().container(),
                            plan.who().tenant(),
                            plan.gpus(),
                            made.get(i).id(),
                            plan.reservationKey(),
                            policy().configName());
                }
            }
            return made;
        } finally {
            // outside the book's lock: removes displaced allocations' files, or this request's if refused
            pending.forEach(AllocationLedger.Pending::close);
        }
    }

    /** Most containers one Allocate may carry; kubelet sends one per call. */
    public static final int MAX_CONTAINERS_PER_REQUEST = 64;

    private void validateRequest(List<? extends Collection<String>> containers) throws LedgerException {
        if (containers.isEmpty()) {
            throw new LedgerException.InvalidRequest(
                    "container_requests is empty; expected one request per " + "container");
        }
        if (containers.size() > MAX_CONTAINERS_PER_REQUEST) {
            throw new LedgerException.InvalidRequest("container_requests has " + containers.size()
                    + " containers; at most " + MAX_CONTAINERS_PER_REQUEST + " are accepted in one Allocate "
                    + "(kubelet sends one)");
        }
        Map<String, Integer> claimedBy = new HashMap<>();
        for (int i = 0; i < containers.size(); i++) {
            try {
                ledger.checkAllocatable(containers.get(i));
            } catch (LedgerException.InvalidRequest e) {
                throw containers.size() == 1
                        ? e
                        : new LedgerException.InvalidRequest("container_requests[" + i + "]: " + e.getMessage());
            }
            for (String id : containers.get(i)) {
                Integer other = claimedBy.putIfAbsent(id, i);
                if (other != null) {
                    throw new LedgerException.InvalidRequest("container_requests[" + i + "] and [" + other
                            + "] both ask for device ID '" + id + "'; a device goes to one container, so the "
                            + "request is refused as a whole");
                }
            }
        }
    }

    /**
     * What one container of the request will be: a repeat of a recorded allocation (who == null), or a new
     * allocation for an identified pod, with the reserved container it consumes if the pod holds a reservation.
     * {@code takenOver} is a recorded allocation of exactly these IDs whose pod is gone: the new pod takes its
     * devices, with fresh files.
     */
    private record Plan(
            List<String> deviceIds,
            Set<String> gpus,
            Admitted who,
            AllocationClaim claim,
            Optional<ContainerReservation> reserved,
            Optional<Allocation> takenOver) {
        String reservationKey() {
            return who == null
                    ? ""
                    : who.reservation().map(Reservation::idempotencyKey).orElse("");
        }
    }

    private Plan plan(List<String> deviceIds) throws AdmissionRefusal {
        Set<String> gpus = gpusOf(deviceIds);
        Optional<Allocation> same = ledger.allocationWithIds(deviceIds);
        Optional<Admitted> newcomer = Optional.empty();
        if (same.isPresent() && isRepeat(same.get())) {
            String podUid = same.get().claim().podUid();
            // the pod of the allocation is shown but no longer pending: a repeat, unless another pod is pending
            // for this size (kubelet gave it the devices of a pod the informer has not seen go)
            newcomer = pods.enabled()
                            && pods.byUid(podUid).filter(PodInfo::pending).isEmpty()
                    ? finder.findNow(deviceIds.size(), gpus)
                            .filter(who -> !who.podUid().equals(podUid))
                    : Optional.empty();
            if (newcomer.isEmpty()) {
                if (pods.enabled()) {
                    finder.servedByRepeat(podUid, deviceIds.size());
                }
                return new Plan(deviceIds, gpus, null, same.get().claim(), Optional.empty(), Optional.empty());
            }
        }
        Optional<Allocation> takenOver = same;
        for (String uuid : gpus) {
            Optional<String> withdrawn = withdrawals.reason(uuid);
            if (withdrawn.isPresent()) {
                throw new AdmissionRefusal.Withdrawn(
                        "GPU " + uuid + " on node " + nodeName + " is withdrawn from sharing: " + withdrawn.get());
            }
        }
        Admitted who = newcomer.isPresent() ? newcomer.get() : finder.find(deviceIds.size(), gpus);
        if (who.reservation().isEmpty()) {
            return new Plan(deviceIds, gpus, who, claim(who, who.container(), 0), Optional.empty(), takenOver);
        }
        Reservation reservation = who.reservation().get();
        int size = deviceIds.size();
        Optional<ContainerReservation> match = reservation.containers().stream()
                .filter(c -> c.milli() == size && new HashSet<>(c.gpuUuids()).equals(gpus))
                .findFirst();
        if (match.isEmpty()) {
            var refusal = new AdmissionRefusal.NotReserved(who.describe() + " holds reservation '"
                    + reservation.idempotencyKey() + "' for " + describe(reservation.containers())
                    + " but kubelet allocates " + size + " milli on " + gpus + " on node " + nodeName);
            log.warn(
                    "event=admission_refused pod={}/{} container={} tenant={} gpus={} reason=\"{}\"",
                    who.namespace(),
                    who.pod(),
                    who.container(),
                    who.tenant(),
                    gpus,
                    refusal.getMessage());
            report(who, refusal);
            throw refusal;
        }
        ContainerReservation container = match.get();
        return new Plan(deviceIds, gpus, who, claim(who, container.name(), container.memoryBytes()), match, takenOver);
    }

    /**
     * Whether an Allocate of exactly the IDs of {@code existing} repeats it: kubelet retrying an Allocate, or
     * giving an init container's exact IDs to an app container of the same pod; the devices keep their
     * allocation and quotas. That is so while its pod exists (or, without the Kubernetes API, when it was made
     * for a known pod: nothing says that pod is gone) — unless that pod is no longer pending and another pod is
     * ({@link #plan}). Otherwise a new container receives a departed one's
     * devices: identified as any other, with fresh files ({@link AllocationLedger#prepareTakeover}).
     */
    private boolean isRepeat(Allocation existing) {
        if (existing.claim().isDra()) {
            return false; // a DRA claim's slots are never the device plugin's to repeat (one GPU, one path)
        }
        String podUid = existing.claim().podUid();
        if (podUid.isEmpty()) {
            return false;
        }
        return !pods.enabled() || pods.byUid(podUid).isPresent();
    }

    /**
     * Under the book's lock, memory only: checks every container against the node as it is now (departed
     * allocations left out, earlier containers of the request counted), then records them all.
     */
    private List<Allocation> admitInOneStep(
            ReservationBook.Admission admission, List<Plan> plans, List<AllocationLedger.Pending> pending) {
        Set<String> departed = new TreeSet<>();
        for (Plan plan : plans) {
            if (plan.who() != null) { // a repeat keeps its allocation; anything else displaces what it reuses
                departed.addAll(ledger.holdersOf(plan.deviceIds()));
            }
        }
        NodeUsage usage = admission.usage(departed);
        for (Plan plan : plans) {
            if (plan.who() == null) {
                continue;
            }
            if (plan.reserved().isPresent()) {
                try {
                    // the reservation's own pod: a pod of the same tenant may be admitted on a sibling's one
                    admission.consume(
                            plan.who().reservation().orElseThrow().podUid(),
                            plan.reserved().get());
                } catch (ReservationException e) {
                    // the lease ended or the scheduler released it since the pod was identified
                    throw new Refused(
                            plan, new AdmissionRefusal.NotReserved(plan.who().describe() + ": " + e.getMessage()));
                }
                continue;
            }
            checkUnreserved(plan, usage);
        }
        List<Allocation> made = new ArrayList<>(pending.size());
        for (AllocationLedger.Pending each : pending) {
            try {
                made.add(each.commit());
            } catch (LedgerException e) {
                throw new LedgerFailure(e);
            }
        }
        return made;
    }

    /** Tenancy and capacity of a container without a reservation; counts it in {@code usage} when it fits. */
    private void checkUnreserved(Plan plan, NodeUsage usage) {
        Admitted who = plan.who();
        int perGpu = MilliGpu.perGpu(plan.deviceIds().size());
        for (String uuid : plan.gpus()) {
            GpuUsage gpu = usage.gpu(uuid).orElseThrow();
            // an unidentified pod (no Kubernetes API, no reservation) has no tenant to check
            Optional<String> tenancy = who.podUid().isEmpty()
                    ? Optional.empty()
                    : policy().refusal(who.tenant(), uuid, gpu.tenants(), nodeName, usage.nodeTenants());
            if (tenancy.isPresent()) {
                throw new Refused(plan, new AdmissionRefusal.AntiAffinity(who.describe() + ": " + tenancy.get()));
            }
            long memory = MilliGpu.defaultMemory(perGpu, gpu.gpu().memoryBytes());
            String shortfall = gpu.capacityShortfall(perGpu, memory);
            if (shortfall != null) {
                throw new Refused(
                        plan,
                        new AdmissionRefusal.ReservedForOthers(who.describe() + ": GPU " + uuid
                                + " on node " + nodeName + ": " + shortfall + " (" + gpu.describe()
                                + "; reservations on "
                                + "it: " + describeReservations(usage, uuid) + ")"));
            }
        }
        String tenant = who.podUid().isEmpty() ? TenantIdentity.UNKNOWN : who.tenant();
        for (String uuid : plan.gpus()) {
            usage.hold(
                    tenant,
                    uuid,
                    perGpu,
                    MilliGpu.defaultMemory(
                            perGpu, usage.gpu(uuid).orElseThrow().gpu().memoryBytes()));
        }
    }

    private void report(Admitted who, AdmissionRefusal refusal) {
        if (!who.namespace().isEmpty()) {
            events.onPod(who.namespace(), who.pod(), who.podUid(), "GpuAllocationRefused", refusal.getMessage());
        }
    }

    private static AllocationClaim claim(Admitted who, String container, long memoryBytesPerGpu) {
        if (who.podUid().isEmpty()) {
            return AllocationClaim.UNKNOWN; // no Kubernetes API and no reservation: counted as tenant "(unknown)"
        }
        return new AllocationClaim(
                who.podUid(), who.namespace(), who.pod(), container, who.tenant(), memoryBytesPerGpu);
    }

    /** The reserved GPUs' IDs among kubelet's candidates (must-include ones first). */
    private List<MilliGpuId> reservedIds(
            Admitted who,
            Reservation reservation,
            Collection<String> available,
            Collection<String> mustInclude,
            int size)
            throws AdmissionRefusal {
        ContainerReservation container = reservation.containers().stream()
                .filter(c -> c.milli() == size && c.name().equals(who.container()))
                .findFirst()
                .or(() -> reservation.containers().stream()
                        .filter(c -> c.milli() == size)
                        .findFirst())
                .orElseThrow(() -> new AdmissionRefusal.NotReserved(who.describe() + " holds reservation '"
                        + reservation.idempotencyKey() + "' for " + describe(reservation.containers())
                        + " but kubelet asks for " + size + " milli"));
        Map<String, List<MilliGpuId>> candidates = new LinkedHashMap<>();
        for (String text : concat(mustInclude, available)) {
            MilliGpuId id = MilliGpuId.parse(text);
            List<MilliGpuId> onGpu = candidates.computeIfAbsent(id.uuid(), uuid -> new ArrayList<>());
            if (!onGpu.contains(id)) {
                onGpu.add(id);
            }
        }
        List<MilliGpuId> chosen = new ArrayList<>();
        for (String uuid : container.gpuUuids()) {
            Optional<String> withdrawn = withdrawals.reason(uuid);
            if (withdrawn.isPresent()) {
                throw new AdmissionRefusal.Withdrawn(
                        who.describe() + ": reserved GPU " + uuid + " is withdrawn from sharing: " + withdrawn.get());
            }
            List<MilliGpuId> onGpu = candidates.getOrDefault(uuid, List.of());
            if (onGpu.size() < container.milliPerGpu()) {
                throw new AdmissionRefusal.NotReserved(who.describe() + ": reserved GPU " + uuid + " has "
                        + onGpu.size() + " of the " + container.milliPerGpu() + " IDs free among kubelet's "
                        + "candidates");
            }
            chosen.addAll(onGpu.subList(0, container.milliPerGpu()));
        }
        log.info(
                "event=preferred_reserved pod={}/{} container={} tenant={} reservation={} gpus={}",
                who.namespace(),
                who.pod(),
                container.name(),
                who.tenant(),
                reservation.idempotencyKey(),
                container.gpuUuids());
        return chosen;
    }

    /**
     * kubelet's candidates less those on GPUs the tenant may not use (anti-affinity, withdrawn) and less, per
     * GPU, the milli other pods' reservations hold there.
     */
    private List<String> allowedCandidates(Admitted who, Collection<String> available, Map<String, String> refused) {
        Map<String, Integer> reservedMilli = new HashMap<>();
        // kubelet offers only free IDs: an allocation holding any of them is departed and counts for nothing
        Set<String> departed = ledger.holdersOf(available);
        book.admit(admission -> {
            NodeUsage usage = admission.usage(departed);
            for (GpuUsage gpu : usage.gpus()) {
                reservedMilli.put(gpu.uuid(), gpu.milliReserved());
                withdrawals
                        .reason(gpu.uuid())
                        .ifPresentOrElse(reason -> refused.put(gpu.uuid(), WITHDRAWN + reason), () -> {
                            if (!who.podUid().isEmpty()) {
                                policy().refusal(who.tenant(), gpu.uuid(), gpu.tenants(), nodeName, usage.nodeTenants())
                                        .ifPresent(reason -> refused.put(gpu.uuid(), reason));
                            }
                        });
            }
            return null;
        });
        Map<String, List<String>> byGpu = new LinkedHashMap<>();
        for (String text : available) {
            byGpu.computeIfAbsent(MilliGpuId.parse(text).uuid(), uuid -> new ArrayList<>())
                    .add(text);
        }
        List<String> allowed = new ArrayList<>();
        byGpu.forEach((uuid, ids) -> {
            if (refused.containsKey(uuid)) {
                return;
            }
            int keep = Math.max(0, ids.size() - reservedMilli.getOrDefault(uuid, 0));
            allowed.addAll(ids.subList(0, keep));
        });
        if (!refused.isEmpty()) {
            log.info(
                    "event=preferred_filtered pod={}/{} container={} tenant={} policy={} excluded_gpus={}",
                    who.namespace(),
                    who.pod(),
                    who.container(),
                    who.tenant(),
                    policy().configName(),
                    refused.keySet());
        }
        return allowed;
    }

    private static Set<String> gpusOf(Collection<String> deviceIds) {
        Set<String> gpus = new TreeSet<>();
        for (String id : deviceIds) {
            gpus.add(MilliGpuId.parse(id).uuid());
        }
        return gpus;
    }

    private static List<String> concat(Collection<String> first, Collection<String> second) {
        var all = new LinkedHashSet<String>(first);
        all.addAll(second);
        return List.copyOf(all);
    }

    private static String describe(List<ContainerReservation> containers) {
        return containers.stream()
                .map(c -> "'" + c.name() + "' " + c.milli() + " milli on " + c.gpuUuids())
                .collect(Collectors.joining(", "));
    }

    private static String describeReservations(NodeUsage usage, String uuid) {
        String held = usage.reservationsOn(uuid).stream()
                .map(r -> "'" + r.idempotencyKey() + "' (pod " + r.podUid() + ", tenant '" + r.tenant() + "')")
                .collect(Collectors.joining(", "));
        return held.isEmpty() ? "none" : held;
    }

    /** Carries a refusal out of the book's callback, which then publishes nothing. */
    private static final class Refused extends RuntimeException {
        private final transient Plan plan;
        private final AdmissionRefusal refusal;

        Refused(Plan plan, AdmissionRefusal refusal) {
            super(refusal.getMessage(), refusal, false, false);
            this.plan = plan;
            this.refusal = refusal;
        }
    }

    /** Carries a ledger refusal out of the book's callback. */
    private static final class LedgerFailure extends RuntimeException {
        private final LedgerException cause;

        LedgerFailure(LedgerException cause) {
            super(cause.getMessage(), cause, false, false);
            this.cause = cause;
        }
    }
}
