package io.omai.agent.tenancy;

/**
 * Kubernetes events the agent raises for operators (refusals, withdrawn GPUs, audit findings), without the core
 * knowing the Kubernetes client. Implementations never throw and never block for long: an event is advice, and
 * losing one must not fail the decision it reports.
 */
public interface ClusterEvents {
    /** For an agent without the Kubernetes API: events are only logged by their callers. */
    ClusterEvents NONE = new ClusterEvents() {
        @Override
        public void onNode(String reason, String message) {}

        @Override
        public void onPod(String namespace, String pod, String podUid, String reason, String message) {}
    };

    /** A Warning event about this node. */
    void onNode(String reason, String message);

    /** A Warning event about a pod. */
    void onPod(String namespace, String pod, String podUid, String reason, String message);
}
