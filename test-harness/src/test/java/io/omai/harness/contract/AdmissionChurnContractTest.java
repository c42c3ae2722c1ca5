package io.omai.harness.contract;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.StatusRuntimeException;
import io.omai.simulator.kubelet.KubeletSimulator.Admission;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * 200 admissions of random sizes (shares of 100..999 milli, one or two whole GPUs) on a 4-GPU node, with random
 * departures that the agent sees only as kubelet shows them (PodResources, and the next Allocate's IDs). When
 * kubelet follows the agent's preference, no admission is refused. The figure goes to docs/benchmarks.md.
 */
class AdmissionChurnContractTest {
    private static final int ADMISSIONS = 200;

    @TempDir
    Path root;

    @Test
    void twoHundredPodsOfMixedSizesWithDeparturesAreNeverRefused() throws Exception {
        try (AdmissionNode node = new AdmissionNode(root, 4, "gpu")) {
            Random random = new Random(2026);
            List<String> running = new ArrayList<>();
            List<String> refusals = new ArrayList<>();
            long[] nanos = new long[ADMISSIONS];
            int departures = 0;
            for (int i = 0; i < ADMISSIONS; i++) {
                int roll = random.nextInt(10);
                int size = roll < 7 ? 100 + random.nextInt(900) : roll < 9 ? 1000 : 2000;
                // pods leave at random, and until kubelet's free IDs can hold the next one
                while (!running.isEmpty() && (random.nextInt(3) == 0 || !node.fits(size))) {
                    node.depart(running.remove(random.nextInt(running.size())));
                    departures++;
                }
                String pod = "churn-" + i;
                long start = System.nanoTime();
                try {
                    Admission admission = node.admit(pod, "main", size);
                    nanos[i] = System.nanoTime() - start;
                    assertThat(node.controlFile(admission.response()))
                            .as("pod %s", pod)
                            .exists();
                    running.add(pod);
                } catch (StatusRuntimeException e) {
                    nanos[i] = System.nanoTime() - start;
                    refusals.add(pod + " (" + size + " milli): " + e.getStatus());
                }
            }
            long[] sorted = nanos.clone();
            Arrays.sort(sorted);
            System.out.printf(
                    "event=churn_result admissions=%d refusals=%d departures=%d mean_ms=%.2f "
                            + "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f%n",
                    ADMISSIONS,
                    refusals.size(),
                    departures,
                    Arrays.stream(nanos).average().orElse(0) / 1e6,
                    sorted[ADMISSIONS / 2] / 1e6,
                    sorted[ADMISSIONS * 99 / 100] / 1e6,
                    sorted[ADMISSIONS - 1] / 1e6);
            assertThat(refusals).as("refused admissions").isEmpty();
            assertThat(node.agent.log()).doesNotContain("event=allocate_refused");
        }
    }
}
