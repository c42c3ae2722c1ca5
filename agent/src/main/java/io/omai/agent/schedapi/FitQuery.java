package io.omai.agent.schedapi;

import java.util.List;
import java.util.Objects;

/** A validated Fit request: a pod's containers and its tenant. */
public record FitQuery(String tenant, List<ContainerNeed> containers) {
    public FitQuery {
        Objects.requireNonNull(tenant, "tenant");
        containers = List.copyOf(containers);
    }
}
