package io.omai.agent.ledger;

import java.util.Objects;

/**
 * Whom an allocation was made for, as the agent established it at Allocate time: the pod (from the scheduler's
 * reservation or from identifying the pod kubelet is admitting), the container, the pod's tenant, and the
 * memory quota per GPU the reservation asked for. Allocations recorded before this was known, or adopted from
 * PodResources after a restart, carry {@link #UNKNOWN}.
 *
 * @param podUid the pod's UID, "" when unknown
 * @param namespace the pod's namespace, "" when unknown
 * @param pod the pod's name, "" when unknown
 * @param container the container's name, "" when unknown
 * @param tenant the pod's tenant, "" when unknown
 * @param memoryBytesPerGpu the memory quota per GPU; 0 means the sharing policy's default
 * @param draClaimUid the UID of the DRA ResourceClaim this allocation was prepared for, "" for an allocation of
 *     the device-plugin path. A DRA allocation is released by NodeUnprepareResources only (PodResources never
 *     lists it), and a GPU holds allocations of one path at a time (docs/dra.md, "One bookkeeper")
 */
public record AllocationClaim(
        String podUid,
        String namespace,
        String pod,
        String container,
        String tenant,
        long memoryBytesPerGpu,
        String draClaimUid) {
    public static final AllocationClaim UNKNOWN = new AllocationClaim("", "", "", "", "", 0);

    /** A claim of the device-plugin path. */
    public AllocationClaim(
            String podUid, String namespace, String pod, String container, String tenant, long memoryBytesPerGpu) {
        this(podUid, namespace, pod, container, tenant, memoryBytesPerGpu, "");
    }

    public AllocationClaim {
        draClaimUid = Objects.requireNonNullElse(draClaimUid, "");
        podUid = Objects.requireNonNullElse(podUid, "");
        namespace = Objects.requireNonNullElse(namespace, "");
        pod = Objects.requireNonNullElse(pod, "");
        container = Objects.requireNonNullElse(container, "");
        tenant = Objects.requireNonNullElse(tenant, "");
        if (memoryBytesPerGpu < 0) {
            throw new IllegalArgumentException("memory per GPU " + memoryBytesPerGpu + " is negative");
        }
    }

    /** Whether this allocation was prepared for a DRA ResourceClaim (not by the device plugin's Allocate). */
    public boolean isDra() {
        return !draClaimUid.isEmpty();
    }

    /** Whether the tenant is known (anti-affinity can only count allocations whose tenant it knows). */
    public boolean tenantKnown() {
        return !tenant.isEmpty();
    }

    /** {@code namespace/pod/container} as logs and PodResources owners write it, or "" when unknown. */
    public String owner() {
        return namespace.isEmpty() ? "" : namespace + "/" + pod + "/" + container;
    }
}
