package io.omai.agent.schedapi;

import java.util.List;
import java.util.Objects;

/**
 * What one running container holds on one GPU, or (with an empty {@code gpuUuid}) its VFs alone: the scheduler
 * API's view of an allocation, so a scheduler can tell which pods would free what if preempted.
 *
 * @param podUid "" where kubelet never told the agent the pod's UID
 * @param tenant the tenant the allocation counts as; "" when not known yet
 * @param milli the share of this GPU (1000 for a whole GPU); 0 when {@code gpuUuid} is empty
 * @param vfIds the container's VFs, on its first entry only (so summing entries counts each VF once)
 */
public record ContainerHolding(
        String podUid,
        String podNamespace,
        String podName,
        String container,
        String tenant,
        String gpuUuid,
        int milli,
        long memoryBytes,
        List<String> vfIds) {
    public ContainerHolding {
        Objects.requireNonNull(podUid, "podUid");
        Objects.requireNonNull(podNamespace, "podNamespace");
        Objects.requireNonNull(podName, "podName");
        Objects.requireNonNull(container, "container");
        Objects.requireNonNull(tenant, "tenant");
        Objects.requireNonNull(gpuUuid, "gpuUuid");
        vfIds = List.copyOf(vfIds);
        if (milli < 0 || memoryBytes < 0) {
            throw new IllegalArgumentException("allocation of " + podNamespace + "/" + podName + "/" + container
                    + " on GPU '" + gpuUuid + "': negative milli " + milli + " or memory " + memoryBytes);
        }
    }
}
