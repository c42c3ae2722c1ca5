package io.omai.simulator.simulate;

import java.util.List;

/**
 * A pod the simulation admits: the tenant is its namespace (the agent's default identity rule).
 *
 * @param milli the milli-GPU share it asks for
 * @param memoryBytes device memory its workload allocates (within its proportional quota)
 * @param dutyPercent how busy its workload keeps the GPU when unthrottled (100 = saturating)
 * @param ibVfs InfiniBand VFs it asks for besides its share (admitted right after the GPU, as kubelet does)
 */
record SamplePod(String namespace, String pod, String container, int milli, long memoryBytes, int dutyPercent,
                 int ibVfs) {

    String tenant() {
        return namespace;
    }

    String name() {
        return namespace + "/" + pod;
    }

    /**
     * Two tenants on two GPUs. Bin-packing (the fullest GPU that fits) keeps the tenants apart with this
     * admission order: team-a's 600 opens GPU 0, team-b's 500 cannot join it and opens GPU 1, team-a's 300
     * joins GPU 0, team-b's 250 joins GPU 1. The trainer also takes one VF of the node's HCA.
     */
    static List<SamplePod> defaults() {
        return List.of(
                new SamplePod("team-a", "trainer-0", "main", 600, 6L << 30, 100, 1),
                new SamplePod("team-b", "infer-0", "server", 500, 4L << 30, 100, 0),
                new SamplePod("team-a", "notebook-0", "main", 300, 2L << 30, 100, 0),
                new SamplePod("team-b", "batch-0", "main", 250, 1L << 30, 60, 0));
    }
}
