package io.omai.agent.metrics;

/** The tenant of a pod, for the {@code tenant} label of allocation series. Must be cheap: called per scrape. */
@FunctionalInterface
public interface TenantLookup {
    /** For agents that do not know tenants (yet): every label is "". */
    TenantLookup UNKNOWN = (namespace, pod) -> "";

    /** The pod's tenant, or "" when unknown. */
    String tenantOf(String namespace, String pod);
}
