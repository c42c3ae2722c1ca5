package io.omai.agent.tenancy;

import java.util.Collection;
import java.util.List;
import java.util.Optional;

/**
 * The pods bound to this node, as last seen in the Kubernetes API (an informer in the daemon). The agent asks
 * it which pod kubelet is admitting and what a pod's tenant is. Implementations answer from memory.
 */
public interface NodePods {
    /** For an agent running without the Kubernetes API: it knows no pods and identifies pods by reservation only. */
    NodePods NONE = new NodePods() {
        @Override
        public boolean enabled() {
            return false;
        }

        @Override
        public Collection<PodInfo> pods() {
            return List.of();
        }
    };

    /** Whether pods are watched at all; false when the agent runs without the Kubernetes API. */
    boolean enabled();

    /** The node's pods as last seen. */
    Collection<PodInfo> pods();

    default Optional<PodInfo> byUid(String uid) {
        return pods().stream().filter(pod -> pod.uid().equals(uid)).findFirst();
    }

    default Optional<PodInfo> byName(String namespace, String name) {
        return pods().stream()
                .filter(pod -> pod.namespace().equals(namespace) && pod.name().equals(name))
                .findFirst();
    }
}
