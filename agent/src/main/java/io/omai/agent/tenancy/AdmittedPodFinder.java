package io.omai.agent.tenancy;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Which pod kubelet is admitting, when GetPreferredAllocation or Allocate names only a size. kubelet admits the
 * pods of a node one at a time, oldest first, and allocates a pod's containers in order (init containers first);
 * so the pod is the oldest pending one whose next container without an allocation asks for this many milli.
 * Pods of different tenants pending at once with a container of that size cannot be told apart: refused, never
 * guessed (not even "the oldest": kubelet admits oldest first only within one batch), also when they hold
 * reservations (kubelet's IDs echo the agent's preference); the scheduler API's Reserve refuses, retryably, a
 * reservation that would create that case. Pods of one tenant can (anti-affinity does
 * not care which of them it is): kubelet's IDs pick the one whose reservation covers them, and when kubelet
 * admitted them in the other order, the running one takes the allocation recorded for its pending sibling and
 * the sibling the reservation left over (docs/tenancy.md, "Same-size pods pending together").
 */
final class AdmittedPodFinder {
    private static final Logger log = LoggerFactory.getLogger(AdmittedPodFinder.class);
    private static final Duration POLL = Duration.ofMillis(25);

    private final String nodeName;
    private final AllocationLedger ledger;
    private final ReservationBook book;
    private final NodePods pods;
    private final Duration identifyWait;
    private final Supplier<ClusterEvents> events;
    // pod UID -> containers admitted as a repeat of an allocation of the same pod (an init container's exact
    // devices handed to the next container): they have no allocation of their own but are done
    private final Map<String, Set<String>> servedByRepeat = new java.util.concurrent.ConcurrentHashMap<>();
    // "podUid/container" of admitted pods already logged as taking a sibling's allocation: logged once, not on
    // every identification
    private final Set<String> correctionsLogged = java.util.concurrent.ConcurrentHashMap.newKeySet();

    AdmittedPodFinder(
            String nodeName,
            AllocationLedger ledger,
            ReservationBook book,
            NodePods pods,
            Duration identifyWait,
            Supplier<ClusterEvents> events) {
        this.nodeName = Objects.requireNonNull(nodeName, "nodeName");
        this.ledger = Objects.requireNonNull(ledger, "ledger");
        this.book = Objects.requireNonNull(book, "book");
        this.pods = Objects.requireNonNull(pods, "pods");
        this.identifyWait = Objects.requireNonNull(identifyWait, "identifyWait");
        this.events = Objects.requireNonNull(events, "events");
    }

    /**
     * The pod kubelet is admitting a container of {@code size} milli for. Pods known from the API come first
     * (oldest pending pod whose next milli-GPU container asks for this size); without any, a single live
     * reservation of that size; without the API and without reservations, an unknown pod.
     *
     * @param gpus the GPUs of the IDs kubelet allocates (Allocate), or empty where kubelet names none yet
     *     (GetPreferredAllocation); among candidates of one tenant, the one whose reservation covers them wins
     */
    Admitted find(int size, Set<String> gpus) throws AdmissionRefusal {
        long deadline = System.nanoTime() + identifyWait.toNanos();
        while (true) {
            Optional<Admitted> found = identifyNow(size, gpus);
            if (found.isPresent()) {
                return found.get();
            }
            if (!pods.enabled()) {
                return new Admitted("", "", "", "", TenantIdentity.UNKNOWN, Optional.empty());
            }
            if (System.nanoTime() >= deadline) {
                throw new AdmissionRefusal.Unidentified("no pending pod on node " + nodeName + " has a container "
                        + "waiting for " + size + " milli-GPU and no reservation of that size is live; the agent "
                        + "allocates only for pods it can identify (waited " + identifyWait.toMillis() + " ms for "
                        + "the pod to appear)");
            }
            try {
                Thread.sleep(POLL);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AdmissionRefusal.Unidentified(
                        "interrupted while identifying the pod for " + size + " milli-GPU on node " + nodeName);
            }
        }
    }

    /** As {@link #find}, without waiting for the informer: empty when no pod can be identified now. */
    Optional<Admitted> findNow(int size, Set<String> gpus) throws AdmissionRefusal {
        return pods.enabled() ? identifyNow(size, gpus) : Optional.empty();
    }

    /**
     * Records that kubelet admitted the pod's next container of {@code size} with exactly the devices of one of
     * the pod's allocations (a repeat), so that container counts as done when the pod's later containers are
     * identified.
     */
    void servedByRepeat(String podUid, int size) {
        servedByRepeat.keySet().removeIf(uid -> pods.byUid(uid).isEmpty());
        pods.byUid(podUid).ifPresent(pod -> {
            Set<String> done = doneContainers().getOrDefault(pod.uid(), Set.of());
            pod.gpuContainers().stream()
                    .filter(c -> !done.contains(c.name()))
                    .findFirst()
                    .filter(next -> next.milli() == size)
                    .ifPresent(next -> servedByRepeat
                            .computeIfAbsent(pod.uid(), uid -> java.util.concurrent.ConcurrentHashMap.newKeySet())
                            .add(next.name()));
        });
    }

    /**
     * Containers with an allocation, or served by a repeat, by pod UID. An allocation recorded for a pending pod
     * counts for an admitted (running) pod of the same tenant that has none for a container of that size:
     * kubelet admitted the pods of one tenant in another order than the agent took them in (either is right for
     * anti-affinity), so the pending pod is still to come and must be found when kubelet admits it.
     */
    private Map<String, Set<String>> doneContainers() {
        Map<String, Map<String, Integer>> counts = new HashMap<>();
        for (Allocation allocation : ledger.allocations()) {
            if (!allocation.claim().podUid().isEmpty()) {
                counts.computeIfAbsent(allocation.claim().podUid(), uid -> new HashMap<>())
                        .merge(allocation.claim().container(), 1, Integer::sum);
            }
        }
        servedByRepeat.forEach((uid, names) -> names.forEach(
                name -> counts.computeIfAbsent(uid, u -> new HashMap<>()).merge(name, 1, Integer::sum)));
        moveToAdmittedSiblings(counts);
        Map<String, Set<String>> done = new HashMap<>();
        counts.forEach((uid, byContainer) -> byContainer.forEach((name, count) -> {
            if (count > 0) {
                done.computeIfAbsent(uid, u -> new HashSet<>()).add(name);
            }
        }));
        return done;
    }

    private void moveToAdmittedSiblings(Map<String, Map<String, Integer>> counts) {
        List<PodInfo> known = pods.pods().stream()
                .sorted(Comparator.comparing(PodInfo::createdAt).thenComparing(PodInfo::uid))
                .toList();
        correctionsLogged.removeIf(
                key -> pods.byUid(key.substring(0, key.indexOf('/'))).isEmpty());
        for (PodInfo admitted : known) {
            if (!admitted.admitted()) {
                continue;
            }
            for (PodInfo.GpuContainer container : admitted.gpuContainers()) {
                if (countOf(counts, admitted.uid(), container.name()) > 0) {
                    continue;
                }
                for (PodInfo sibling : known) {
                    if (!sibling.pending() || !sibling.tenant().equals(admitted.tenant())) {
                        continue;
                    }
                    Optional<PodInfo.GpuContainer> taken = sibling.gpuContainers().stream()
                            .filter(c -> c.milli() == container.milli() && countOf(counts, sibling.uid(), c.name()) > 0)
                            .findFirst();
                    if (taken.isPresent()) {
                        counts.get(sibling.uid()).merge(taken.get().name(), -1, Integer::sum);
                        counts.computeIfAbsent(admitted.uid(), uid -> new HashMap<>())
                                .merge(container.name(), 1, Integer::sum);
                        if (!correctionsLogged.add(admitted.uid() + "/" + container.name())) {
                            break;
                        }
                        log.info(
                                "event=admission_order_corrected node={} tenant={} admitted_pod={} container={} "
                                        + "allocation_recorded_for={} milli={}",
                                nodeName,
                                admitted.tenant(),
                                admitted.ref(),
                                container.name(),
                                sibling.ref(),
                                container.milli());
                        break;
                    }
                }
            }
        }
    }

    private static int countOf(Map<String, Map<String, Integer>> counts, String uid, String container) {
        return counts.getOrDefault(uid, Map.of()).getOrDefault(container, 0);
    }

    private Optional<Admitted> identifyNow(int size, Set<String> gpus) throws AdmissionRefusal {
        Map<String, Set<String>> allocatedContainers = doneContainers();
        List<Candidate> candidates = new ArrayList<>();
        Set<String> lentReservations = new HashSet<>();
        List<PodInfo> pending = pods.pods().stream()
                .filter(PodInfo::pending)
                .sorted(Comparator.comparing(PodInfo::createdAt)
                        .thenComparing(PodInfo::namespace)
                        .thenComparing(PodInfo::name))
                .toList();
        for (PodInfo pod : pending) {
            Set<String> done = allocatedContainers.getOrDefault(pod.uid(), Set.of());
            Optional<PodInfo.GpuContainer> next = pod.gpuContainers().stream()
                    .filter(c -> !done.contains(c.name()))
                    .findFirst()
                    .filter(c -> c.milli() == size);
            if (next.isEmpty()) {
                continue;
            }
            Optional<Reservation> reservation =
                    book.forPod(pod.uid()).or(() -> siblingReservation(pod, size, lentReservations));
            reservation.ifPresent(r -> lentReservations.add(r.idempotencyKey()));
            candidates.add(new Candidate(
                    pod.createdAt(),
                    new Admitted(
                            pod.uid(), pod.namespace(), pod.name(), next.get().name(), pod.tenant(), reservation)));
        }
        if (!candidates.isEmpty()) {
            return Optional.of(choose(candidates, size, gpus));
        }
        // no pod known (informer behind, or no API): a reservation of this size names the pod itself
        List<Candidate> reserved = new ArrayList<>();
        for (Reservation reservation : book.outstanding()) {
            Optional<PodInfo> pod = pods.byUid(reservation.podUid());
            if (pod.isPresent() && !pod.get().pending()) {
                continue;
            }
            reservation.containers().stream()
                    .filter(c -> c.milli() == size)
                    .findFirst()
                    .ifPresent(c -> reserved.add(new Candidate(
                            reservation.createdAt(),
                            new Admitted(
                                    reservation.podUid(),
                                    pod.map(PodInfo::namespace).orElse(""),
                                    pod.map(PodInfo::name).orElse(""),
                                    c.name(),
                                    reservation.tenant(),
                                    Optional.of(reservation)))));
        }
        if (reserved.isEmpty()) {
            return Optional.empty();
        }
        refuseIfTenantsDiffer(reserved.stream().map(Candidate::admitted).toList(), size);
        return Optional.of(preferCovering(reserved, size, gpus).getFirst().admitted());
    }

    /**
     * Pods of one tenant: any of them is right for anti-affinity, so the one whose reservation covers kubelet's
     * GPUs (then the oldest, then by namespace/name). Pods of several tenants are refused. Reservations cannot tell those
     * apart: GetPreferredAllocation names no pod, and the IDs kubelet then allocates are the ones the agent
     * preferred (or kubelet's own pick), so they would only echo the agent's guess.
     */
    private Admitted choose(List<Candidate> candidates, int size, Set<String> gpus) throws AdmissionRefusal {
        long tenants =
                candidates.stream().map(c -> c.admitted().tenant()).distinct().count();
        if (tenants == 1) {
            return preferCovering(candidates, size, gpus).getFirst().admitted();
        }
        // Never "the oldest": kubelet admits oldest first only within one batch of pods it received together; a
        // younger pod bound and delivered first is admitted first, and a guess would put it on a GPU checked for
        // another tenant. Fail closed (the scheduler API's Reserve keeps extender-scheduled pods out of this case).
        throw ambiguity(candidates.stream().map(Candidate::admitted).toList(), size);
    }

    /** The candidates whose reservation covers {@code gpus} with a container of this size, if any do. */
    private static List<Candidate> preferCovering(List<Candidate> candidates, int size, Set<String> gpus) {
        if (gpus.isEmpty()) {
            return candidates;
        }
        List<Candidate> covering = candidates.stream()
                .filter(c -> c.admitted().reservation().stream()
                        .flatMap(r -> r.containers().stream())
                        .anyMatch(r -> r.milli() == size && new HashSet<>(r.gpuUuids()).equals(gpus)))
                .toList();
        return covering.isEmpty() ? candidates : covering;
    }

    /**
     * For a pending pod whose own reservation is gone: a reservation of the same tenant with a container of this
     * size whose pod kubelet already admitted. That pod's admission consumed this pod's reservation (kubelet took
     * them in the other order), so the one left over is this pod's in all but name.
     */
    private Optional<Reservation> siblingReservation(PodInfo pod, int size, Set<String> lent) {
        return book.outstanding().stream()
                .filter(r -> !lent.contains(r.idempotencyKey()))
                .filter(r -> r.tenant().equals(pod.tenant()) && !r.podUid().equals(pod.uid()))
                .filter(r -> pods.byUid(r.podUid()).filter(PodInfo::admitted).isPresent())
                .filter(r -> r.containers().stream().anyMatch(c -> c.milli() == size))
                .findFirst();
    }

    /** A pod that may be the one being admitted, with when it (or its reservation) was created. */
    private record Candidate(java.time.Instant createdAt, Admitted admitted) {}

    private void refuseIfTenantsDiffer(List<Admitted> candidates, int size) throws AdmissionRefusal.Ambiguous {
        if (candidates.stream().map(Admitted::tenant).distinct().count() > 1) {
            throw ambiguity(candidates, size);
        }
    }

    /** The refusal for candidates of several tenants, logged and sent as a node event. */
    private AdmissionRefusal.Ambiguous ambiguity(List<Admitted> candidates, int size) {
        Set<String> tenants = candidates.stream().map(Admitted::tenant).collect(Collectors.toCollection(TreeSet::new));
        String names = candidates.stream().map(Admitted::describe).collect(Collectors.joining(", "));
        log.warn("event=admission_ambiguous node={} size={} candidates=\"{}\"", nodeName, size, names);
        var refusal = new AdmissionRefusal.Ambiguous("cannot tell which pod kubelet is admitting for " + size
                + " milli-GPU on node " + nodeName + ": candidates of different tenants " + tenants + " are "
                + names + "; refusing rather than guessing (kubelet's GetPreferredAllocation and Allocate name no "
                + "pod, and reservations cannot tell them apart either: the IDs kubelet allocates are the ones "
                + "the agent preferred; create or bind these pods apart)");
        events.get().onNode("GpuAdmissionAmbiguous", refusal.getMessage());
        return refusal;
    }
}
