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
 * Pods of different tenants created in the same second cannot be told apart: refused, never guessed. Pods of
 * one tenant can (anti-affinity does not care which of them it is).
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
     */
    Admitted find(int size) throws AdmissionRefusal {
        long deadline = System.nanoTime() + identifyWait.toNanos();
        while (true) {
            Optional<Admitted> found = identifyNow(size);
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
    Optional<Admitted> findNow(int size) throws AdmissionRefusal {
        return pods.enabled() ? identifyNow(size) : Optional.empty();
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

    /** Containers with an allocation, or served by a repeat, by pod UID. */
    private Map<String, Set<String>> doneContainers() {
        Map<String, Set<String>> allocatedContainers = new HashMap<>();
        for (Allocation allocation : ledger.allocations()) {
            if (!allocation.claim().podUid().isEmpty()) {
                allocatedContainers
                        .computeIfAbsent(allocation.claim().podUid(), uid -> new HashSet<>())
                        .add(allocation.claim().container());
            }
        }
        servedByRepeat.forEach((uid, names) ->
                allocatedContainers.computeIfAbsent(uid, u -> new HashSet<>()).addAll(names));
        return allocatedContainers;
    }

    private Optional<Admitted> identifyNow(int size) throws AdmissionRefusal {
        Map<String, Set<String>> allocatedContainers = doneContainers();
        List<Admitted> candidates = new ArrayList<>();
        List<PodInfo> candidatePods = new ArrayList<>();
        for (PodInfo pod : pods.pods()) {
            if (!pod.pending()) {
                continue;
            }
            Set<String> done = allocatedContainers.getOrDefault(pod.uid(), Set.of());
            pod.gpuContainers().stream()
                    .filter(c -> !done.contains(c.name()))
                    .findFirst()
                    .filter(next -> next.milli() == size)
                    .ifPresent(next -> {
                        candidatePods.add(pod);
                        candidates.add(new Admitted(
                                pod.uid(),
                                pod.namespace(),
                                pod.name(),
                                next.name(),
                                pod.tenant(),
                                book.forPod(pod.uid())));
                    });
        }
        if (!candidates.isEmpty()) {
            var oldestAt = candidatePods.stream()
                    .map(PodInfo::createdAt)
                    .min(Comparator.naturalOrder())
                    .orElseThrow();
            List<Admitted> oldest = new ArrayList<>();
            for (int i = 0; i < candidates.size(); i++) {
                if (candidatePods.get(i).createdAt().equals(oldestAt)) {
                    oldest.add(candidates.get(i));
                }
            }
            oldest.sort(Comparator.comparing(Admitted::namespace).thenComparing(Admitted::pod));
            refuseIfTenantsDiffer(oldest, size);
            return Optional.of(oldest.getFirst());
        }
        // no pod known (informer behind, or no API): a reservation of this size names the pod itself
        List<Admitted> reserved = new ArrayList<>();
        for (Reservation reservation : book.outstanding()) {
            Optional<PodInfo> pod = pods.byUid(reservation.podUid());
            if (pod.isPresent() && !pod.get().pending()) {
                continue;
            }
            reservation.containers().stream()
                    .filter(c -> c.milli() == size)
                    .findFirst()
                    .ifPresent(c -> reserved.add(new Admitted(
                            reservation.podUid(),
                            pod.map(PodInfo::namespace).orElse(""),
                            pod.map(PodInfo::name).orElse(""),
                            c.name(),
                            reservation.tenant(),
                            Optional.of(reservation))));
        }
        if (reserved.isEmpty()) {
            return Optional.empty();
        }
        refuseIfTenantsDiffer(reserved, size);
        return Optional.of(reserved.getFirst());
    }

    private void refuseIfTenantsDiffer(List<Admitted> candidates, int size) throws AdmissionRefusal.Ambiguous {
        Set<String> tenants = candidates.stream().map(Admitted::tenant).collect(Collectors.toCollection(TreeSet::new));
        if (tenants.size() > 1) {
            String names = candidates.stream().map(Admitted::describe).collect(Collectors.joining(", "));
            log.warn("event=admission_ambiguous node={} size={} candidates=\"{}\"", nodeName, size, names);
            var refusal = new AdmissionRefusal.Ambiguous("cannot tell which pod kubelet is admitting for " + size
                    + " milli-GPU on node " + nodeName + ": candidates of different tenants " + tenants + " are "
                    + names + "; refusing rather than guessing (reserve through the scheduler API, or create "
                    + "these pods apart)");
            events.get().onNode("GpuAdmissionAmbiguous", refusal.getMessage());
            throw refusal;
        }
    }
}
