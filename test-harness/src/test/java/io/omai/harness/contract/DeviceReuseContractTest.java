package io.omai.harness.contract;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.omai.simulator.kubelet.KubeletSimulator.Admission;
import io.omai.simulator.sim.SimNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * kubelet frees a departed pod's devices at once and hands them out at the next admission, before the agent's
 * PodResources reconciliation has seen the pod go. The real agent must take them, under every tenancy policy.
 */
class DeviceReuseContractTest {
    @TempDir
    Path root;

    @ParameterizedTest
    @ValueSource(strings = {"gpu", "node", "none"})
    void departedPodsDevicesAreHandedOutAgainAtOnce(String policy) throws Exception {
        try (AdmissionNode node = new AdmissionNode(root, 2, policy)) {
            String gpu0 = SimNode.uuidOf(0);
            List<Admission> quarters = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                quarters.add(node.admit("p" + i, "main", 250));
            }
            // the preference packs one GPU before touching the other
            assertThat(quarters)
                    .allSatisfy(a -> assertThat(a.response().getEnvsMap()).containsEntry("CUDA_VISIBLE_DEVICES", gpu0));

            // one pod leaves: the agent's preference offers its IDs, and Allocate of them is admitted
            node.depart("p1");
            Admission again = node.admit("q1", "main", 250);
            assertThat(again.deviceIds())
                    .containsExactlyInAnyOrderElementsOf(quarters.get(1).deviceIds());
            assertThat(node.controlFile(again.response())).exists();

            // two more leave: 500 over the IDs of two departed pods
            node.depart("p0");
            node.depart("p2");
            Admission half = node.admit("half", "main", 500);
            assertThat(half.response().getEnvsMap()).containsEntry("CUDA_VISIBLE_DEVICES", gpu0);
            assertThat(half.deviceIds())
                    .containsAll(quarters.get(0).deviceIds())
                    .containsAll(quarters.get(2).deviceIds());

            // mixed sizes: the 500 leaves and a 300 takes part of its IDs; the rest of them are free again
            node.depart("half");
            Admission part = node.admit("part", "main", 300);
            assertThat(part.response().getEnvsMap()).containsEntry("CUDA_VISIBLE_DEVICES", gpu0);
            Admission rest = node.admit("rest", "main", 200);
            assertThat(rest.response().getEnvsMap()).containsEntry("CUDA_VISIBLE_DEVICES", gpu0);

            // a whole GPU whose every share departed
            for (String pod : List.of("p3", "q1", "part", "rest")) {
                node.depart(pod);
            }
            Admission whole = node.admit("whole", "main", 2000);
            assertThat(whole.deviceIds()).hasSize(2000);
            assertThat(node.controlFile(whole.response())).exists();

            // released like any release: one allocation directory per container kubelet holds, no more
            await().atMost(Duration.ofSeconds(10))
                    .untilAsserted(
                            () -> assertThat(node.allocationDirectories()).hasSize(1));
            assertThat(node.agent.log()).doesNotContain("event=allocate_refused");
        }
    }
}
