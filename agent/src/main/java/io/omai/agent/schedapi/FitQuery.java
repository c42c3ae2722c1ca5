package io.omai.agent.schedapi;

import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * A validated Fit request: a pod's containers and its tenant.
 *
 * @param podUid the pod whose own reservation is not counted, or empty
 */
public record FitQuery(String tenant, List<ContainerNeed> containers, Optional<String> podUid) {
    public FitQuery {
        Objects.requireNonNull(tenant, "tenant");
        containers = List.copyOf(containers);
        Objects.requireNonNull(podUid, "podUid");
    }
}
