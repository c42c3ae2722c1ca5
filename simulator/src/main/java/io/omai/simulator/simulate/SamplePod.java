package io.omai.simulator.simulate;

import java.util.List;
import java.util.Map;

/**
 * A pod the simulation creates in its Kubernetes API and admits. Its tenant is not stated here: the agent
 * identifies the pod through its informer and takes the tenant from the {@code omai.io/tenant} label, else the
 * namespace, exactly as on a real node.
 *
 * @param labels the pod's labels
 * @param milli the milli-GPU share it asks for
 * @param memoryBytes device memory its workload allocates (within its proportional quota)
 * @param dutyPercent how busy its workload keeps the GPU when unthrottled (100 = saturating)
 * @param ibVfs InfiniBand VFs it asks for besides its share (admitted right after the GPU, as kubelet does)
 */
record SamplePod(
        String namespace,
        String pod,
        String container,
        Map<String, String> labels,
        int milli,
        long memoryBytes,
        int dutyPercent,
        int ibVfs) {

    static final String TENANT_LABEL = "omai.io/tenant";

    SamplePod {
        labels = Map.copyOf(labels);
    }

    String name() {
        return namespace + "/" + pod;
    }

    /**
     * Two tenants on two GPUs. The trainer runs in namespace {@code research} and belongs to team-a by its
     * label; the others belong to their namespaces. Bin-packing (the fullest GPU that fits) keeps the tenants
     * apart with this admission order: team-a's 600 opens GPU 0, team-b's 500 cannot join it and opens GPU 1,
     * team-a's 300 joins GPU 0, team-b's 250 joins GPU 1. The trainer also takes one VF of the node's HCA.
     */
    static List<SamplePod> defaults() {
        return List.of(
                new SamplePod("research", "trainer-0", "main", Map.of(TENANT_LABEL, "team-a"), 600, 6L << 30, 100, 1),
                new SamplePod("team-b", "infer-0", "server", Map.of("app", "infer"), 500, 4L << 30, 100, 0),
                new SamplePod("team-a", "notebook-0", "main", Map.of(), 300, 2L << 30, 100, 0),
                new SamplePod("team-b", "batch-0", "main", Map.of(), 250, 1L << 30, 60, 0));
    }
}
