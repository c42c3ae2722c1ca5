package io.omai.agent.tenancy;

import java.time.Instant;
import java.util.List;
import java.util.Objects;

/**
 * What the agent knows of one pod bound to its node, as the Kubernetes API reported it last: identity, tenant,
 * whether kubelet may still be admitting it, and its containers that request milli-GPUs.
 *
 * @param pending the pod's phase is {@code Pending} (kubelet admits pods while they are pending)
 * @param createdAt the pod's creation timestamp; kubelet admits the pods of a node oldest first
 * @param gpuContainers the containers requesting milli-GPUs, in the order kubelet allocates them (init
 *     containers first, then the others, each in spec order)
 * @param admitted kubelet certainly admitted the pod: its phase is {@code Running} or {@code Succeeded} (a
 *     {@code Failed} pod may have been refused at admission, so it does not count)
 */
public record PodInfo(
        String uid,
        String namespace,
        String name,
        String tenant,
        boolean pending,
        Instant createdAt,
        List<GpuContainer> gpuContainers,
        boolean admitted) {
    /** A pod whose phase is only known as pending or not: a pod no longer pending counts as admitted. */
    public PodInfo(
            String uid,
            String namespace,
            String name,
            String tenant,
            boolean pending,
            Instant createdAt,
            List<GpuContainer> gpuContainers) {
        this(uid, namespace, name, tenant, pending, createdAt, gpuContainers, !pending);
    }

    /** A container and the milli-GPUs it requests. */
    public record GpuContainer(String name, int milli) {
        public GpuContainer {
            Objects.requireNonNull(name, "name");
        }
    }

    public PodInfo {
        Objects.requireNonNull(uid, "uid");
        Objects.requireNonNull(namespace, "namespace");
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(tenant, "tenant");
        Objects.requireNonNull(createdAt, "createdAt");
        gpuContainers = List.copyOf(gpuContainers);
        if (pending && admitted) {
            throw new IllegalArgumentException("pod " + uid + " cannot be both pending and admitted (running)");
        }
    }

    /** {@code namespace/name}. */
    public String ref() {
        return namespace + "/" + name;
    }
}
