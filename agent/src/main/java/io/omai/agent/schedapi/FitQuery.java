package io.omai.agent.schedapi;

import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * A validated Fit request: a pod's containers and its tenant.
 *
 * @param podUid the pod whose own reservation is not counted, or empty
 * @param ignorePodUids preemption victims: their allocations and reservations count as free
 */
public record FitQuery(
        String tenant, List<ContainerNeed> containers, Optional<String> podUid, Set<String> ignorePodUids) {
    public FitQuery(String tenant, List<ContainerNeed> containers, Optional<String> podUid) {
        this(tenant, containers, podUid, Set.of());
    }

    public FitQuery {
        Objects.requireNonNull(tenant, "tenant");
        containers = List.copyOf(containers);
        Objects.requireNonNull(podUid, "podUid");
        ignorePodUids = Set.copyOf(ignorePodUids);
    }

    /** Whether {@code reservation}'s pod's reservation is left out: the pod itself or a victim. */
    boolean ignoresPod(String podUid) {
        return this.podUid.map(podUid::equals).orElse(false) || ignorePodUids.contains(podUid);
    }
}
