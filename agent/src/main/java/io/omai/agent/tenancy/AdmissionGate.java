package io.omai.agent.tenancy;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationClaim;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.MilliGpuId;
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
 * <p>Never blocks for long: the only wait is for the pod informer to show a pod kubelet already admits
 * ({@code identifyWait}, bounded).
 */
public final class AdmissionGate {
    private static final Logger LOG = LoggerFactory.getLogger(AdmissionGate.class);
    private static final String WITHDRAWN = "withdrawn: ";

    private final String nodeName;
    private final AllocationLedger ledger;
    private final ReservationBook book;
    private final GpuWithdrawals withdrawals;
    private final AdmittedPodFinder finder;
    private volatile ClusterEvents events = ClusterEvents.NONE;

    /**
     * @param pods this node's pods as the API shows them ({@link NodePods#NONE} without the Kubernetes API)
     * @param identifyWait how long to wait for the informer to show the pod being admitted
     */
    public AdmissionGate(String nodeName, AllocationLedger ledger, ReservationBook book, NodePods pods,
                         GpuWithdrawals withdrawals, Duration identifyWait) {
        this.nodeName = Objects.requireNonNull(nodeName, "nodeName");
        this.ledger = Objects.requireNonNull(ledger, "ledger");
        this.book = Objects.requireNonNull(book, "book");
        this.withdrawals = Objects.requireNonNull(withdrawals, "withdrawals");
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
    public List<MilliGpuId> preferredAllocation(Collection<String> available, Collection<String> mustInclude,
                                                int size) throws LedgerException, AdmissionRefusal {
        // the ledger validates the IDs and the size first, so a malformed request is INVALID_ARGUMENT as before
        ledger.preferredAllocation(available, mustInclude, size);
        Admitted who = finder.find(size);
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
            LOG.warn("event=preferred_allocation_refused pod={}/{} tenant={} size={} excluded=\"{}\"",
                    who.namespace(), who.pod(), who.tenant(), size, excluded);
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
        ledger.checkAllocatable(deviceIds);
        Set<String> requested = new HashSet<>(deviceIds);
        for (Allocation existing : ledger.allocations()) {
            if (!existing.claim().podUid().isEmpty() && new HashSet<>(existing.deviceIdStrings()).equals(requested)) {
                return ledger.allocate(deviceIds); // kubelet repeats Allocate (init containers, node reboot)
            }
        }
        Set<String> gpus = gpusOf(deviceIds);
        for (String uuid : gpus) {
            Optional<String> withdrawn = withdrawals.reason(uuid);
            if (withdrawn.isPresent()) {
                throw new AdmissionRefusal.Withdrawn("GPU " + uuid + " on node " + nodeName
                        + " is withdrawn from sharing: " + withdrawn.get());
            }
        }
        Admitted who = finder.find(deviceIds.size());
        if (who.reservation().isEmpty()) {
            return allocateUnreserved(who, deviceIds, gpus);
        }
        try {
            return allocateReserved(who, deviceIds, gpus);
        } catch (AdmissionRefusal refusal) {
            LOG.warn("event=admission_refused pod={}/{} container={} tenant={} gpus={} reason=\"{}\"",
                    who.namespace(), who.pod(), who.container(), who.tenant(), gpus, refusal.getMessage());
            report(who, refusal);
            throw refusal;
        }
    }

    private Allocation allocateReserved(Admitted who, Collection<String> deviceIds, Set<String> gpus)
            throws LedgerException, AdmissionRefusal {
        Reservation reservation = who.reservation().orElseThrow();
        int size = deviceIds.size();
        Optional<ContainerReservation> match = reservation.containers().stream()
                .filter(c -> c.milli() == size && new HashSet<>(c.gpuUuids()).equals(gpus)).findFirst();
        if (match.isEmpty()) {
            throw new AdmissionRefusal.NotReserved(who.describe() + " holds reservation '"
                    + reservation.idempotencyKey() + "' for " + describe(reservation.containers())
                    + " but kubelet allocates " + size + " milli on " + gpus + " on node " + nodeName);
        }
        ContainerReservation wanted = match.get();
        Allocation[] made = new Allocation[1];
        try {
            book.consumeContainer(who.podUid(), c -> c.equals(wanted), (r, container) -> {
                try {
                    made[0] = ledger.allocate(deviceIds, claim(who, container.name(), container.memoryBytes()));
                } catch (LedgerException e) {
                    throw new LedgerFailure(e);
                }
            });
        } catch (LedgerFailure e) {
            throw e.cause;
        } catch (ReservationException e) {
            // the lease ended or the scheduler released it between the checks: nothing recorded
            throw new AdmissionRefusal.NotReserved(who.describe() + ": " + e.getMessage());
        }
        LOG.info("event=admitted_reserved pod={}/{} container={} tenant={} reservation={} gpus={} allocation={}",
                who.namespace(), who.pod(), wanted.name(), who.tenant(), reservation.idempotencyKey(), gpus,
                made[0].id());
        return made[0];
    }

    private Allocation allocateUnreserved(Admitted who, Collection<String> deviceIds, Set<String> gpus)
            throws LedgerException, AdmissionRefusal {
        int perGpu = MilliGpu.perGpu(deviceIds.size());
        Object outcome = book.atomically(reservations -> {
            NodeUsage usage = NodeUsage.of(LedgerNodeCapacity.of(nodeName, ledger, withdrawals), reservations);
            for (String uuid : new TreeSet<>(gpus)) {
                GpuUsage gpu = usage.gpu(uuid).orElseThrow();
                // an unidentified pod (no Kubernetes API, no reservation) has no tenant to check
                Optional<String> refusal = who.podUid().isEmpty() ? Optional.empty() : policy().refusal(who.tenant(),
                        uuid, gpu.tenants(), nodeName, usage.nodeTenants());
                if (refusal.isPresent()) {
                    return new AdmissionRefusal.AntiAffinity(who.describe() + ": " + refusal.get());
                }
                if (gpu.milliFree() < perGpu) {
                    return new AdmissionRefusal.ReservedForOthers(who.describe() + ": GPU " + uuid + " has "
                            + gpu.milliFree() + " milli free once reservations are counted, " + perGpu
                            + " requested; reservations: " + describeReservations(reservations, uuid));
                }
            }
            try {
                return ledger.allocate(deviceIds, claim(who, who.container(), 0));
            } catch (LedgerException e) {
                return e;
            }
        });
        if (outcome instanceof AdmissionRefusal refusal) {
            LOG.warn("event=admission_refused pod={}/{} container={} tenant={} gpus={} reason=\"{}\"",
                    who.namespace(), who.pod(), who.container(), who.tenant(), gpus, refusal.getMessage());
            report(who, refusal);
            throw refusal;
        }
        if (outcome instanceof LedgerException e) {
            throw e;
        }
        Allocation made = (Allocation) outcome;
        LOG.info("event=admitted pod={}/{} container={} tenant={} gpus={} allocation={} policy={}", who.namespace(),
                who.pod(), who.container(), who.tenant(), gpus, made.id(), policy().configName());
        return made;
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
        return new AllocationClaim(who.podUid(), who.namespace(), who.pod(), container, who.tenant(),
                memoryBytesPerGpu);
    }

    /** The reserved GPUs' IDs among kubelet's candidates (must-include ones first). */
    private List<MilliGpuId> reservedIds(Admitted who, Reservation reservation, Collection<String> available,
                                         Collection<String> mustInclude, int size) throws AdmissionRefusal {
        ContainerReservation container = reservation.containers().stream()
                .filter(c -> c.milli() == size && c.name().equals(who.container())).findFirst()
                .or(() -> reservation.containers().stream().filter(c -> c.milli() == size).findFirst())
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
                throw new AdmissionRefusal.Withdrawn(who.describe() + ": reserved GPU " + uuid
                        + " is withdrawn from sharing: " + withdrawn.get());
            }
            List<MilliGpuId> onGpu = candidates.getOrDefault(uuid, List.of());
            if (onGpu.size() < container.milliPerGpu()) {
                throw new AdmissionRefusal.NotReserved(who.describe() + ": reserved GPU " + uuid + " has "
                        + onGpu.size() + " of the " + container.milliPerGpu() + " IDs free among kubelet's "
                        + "candidates");
            }
            chosen.addAll(onGpu.subList(0, container.milliPerGpu()));
        }
        LOG.info("event=preferred_reserved pod={}/{} container={} tenant={} reservation={} gpus={}", who.namespace(),
                who.pod(), container.name(), who.tenant(), reservation.idempotencyKey(), container.gpuUuids());
        return chosen;
    }

    /**
     * kubelet's candidates less those on GPUs the tenant may not use (anti-affinity, withdrawn) and less, per
     * GPU, the milli other pods' reservations hold there.
     */
    private List<String> allowedCandidates(Admitted who, Collection<String> available, Map<String, String> refused) {
        Map<String, Integer> reservedMilli = new HashMap<>();
        book.atomically(reservations -> {
            NodeUsage usage = NodeUsage.of(LedgerNodeCapacity.of(nodeName, ledger, withdrawals), reservations);
            for (GpuUsage gpu : usage.gpus()) {
                reservedMilli.put(gpu.uuid(), gpu.milliReserved());
                withdrawals.reason(gpu.uuid()).ifPresentOrElse(reason -> refused.put(gpu.uuid(), WITHDRAWN + reason),
                        () -> {
                            if (!who.podUid().isEmpty()) {
                                policy().refusal(who.tenant(), gpu.uuid(), gpu.tenants(), nodeName,
                                        usage.nodeTenants()).ifPresent(reason -> refused.put(gpu.uuid(), reason));
                            }
                        });
            }
            return null;
        });
        Map<String, List<String>> byGpu = new LinkedHashMap<>();
        for (String text : available) {
            byGpu.computeIfAbsent(MilliGpuId.parse(text).uuid(), uuid -> new ArrayList<>()).add(text);
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
            LOG.info("event=preferred_filtered pod={}/{} container={} tenant={} policy={} excluded_gpus={}",
                    who.namespace(), who.pod(), who.container(), who.tenant(), policy().configName(), refused.keySet());
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
        return containers.stream().map(c -> "'" + c.name() + "' " + c.milli() + " milli on " + c.gpuUuids())
                .collect(Collectors.joining(", "));
    }

    private static String describeReservations(List<Reservation> reservations, String uuid) {
        return reservations.stream().filter(r -> r.containers().stream().anyMatch(c -> c.gpuUuids().contains(uuid)))
                .map(r -> "'" + r.idempotencyKey() + "' (pod " + r.podUid() + ", tenant '" + r.tenant() + "')")
                .collect(Collectors.joining(", "));
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
