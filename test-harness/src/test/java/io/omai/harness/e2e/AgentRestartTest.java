package io.omai.harness.e2e;

import static io.omai.harness.e2e.SimulatedGpuNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The agent SIGKILLed and restarted keeps its ledger; pods that left PodResources are then released. */
class AgentRestartTest {
    @TempDir
    Path dir;

    private static List<String> owners(JsonNode allocations) {
        List<String> owners = new ArrayList<>();
        allocations.forEach(a -> owners.add(a.get("owner").asText()));
        return owners;
    }

    @Test
    void afterSigkillAndRestartTheLedgerIsIdenticalAndAVanishedPodIsReleased() throws Exception {
        try (SimulatedGpuNode node = new SimulatedGpuNode(dir, 2)) {
            AgentJvm first = node.startAgent();
            node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
            node.kubelet.awaitDevices(RESOURCE, list -> list.size() == 2000, Duration.ofSeconds(10));
            KubeletSimulator.Admission a = node.kubelet.admit("team-a", "infer-0", "main", RESOURCE, 250);
            KubeletSimulator.Admission b = node.kubelet.admit("team-b", "train-0", "main", RESOURCE, 1000);
            // Wait until reconciliation has learned both owners, so the ledger is at rest before the kill.
            await().atMost(Duration.ofSeconds(15))
                    .until(() -> owners(node.checkpointAllocations())
                            .containsAll(List.of("team-a/infer-0/main", "team-b/train-0/main")));
            String before = node.checkpointAllocations().toString();

            first.kill();
            assertThat(first.alive()).isFalse();
            AgentJvm second = node.startAgent();
            node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
            second.awaitLog("event=ledger_opened", Duration.ofSeconds(5));
            assertThat(second.log()).contains("allocations=2");
            Thread.sleep(1_000); // several reconciliation rounds (every 300 ms) must change nothing
            assertThat(node.checkpointAllocations().toString()).isEqualTo(before);

            String gone = a.response().getEnvsMap().get("OMAI_ALLOCATION_ID");
            String kept = b.response().getEnvsMap().get("OMAI_ALLOCATION_ID");
            node.kubelet.podResources().removePod("team-a", "infer-0");
            // The directory goes at once; the checkpoint follows on the ledger's writer thread.
            await().atMost(Duration.ofSeconds(20))
                    .until(() -> !Files.exists(node.allocationDir(gone))
                            && node.checkpointAllocations().size() == 1);
            JsonNode after = node.checkpointAllocations();
            assertThat(after).hasSize(1);
            assertThat(after.get(0).get("id").asText()).isEqualTo(kept);
            assertThat(Files.isDirectory(node.allocationDir(kept))).isTrue();
            assertThat(second.log())
                    .contains("event=allocation_released reason=not_in_pod_resources allocation=" + gone);

            assertThat(second.stop()).as("SIGTERM: graceful stop").isIn(0, 143);
            assertThat(second.log()).contains("event=agent_stopped");
        }
    }

    @Test
    void aCorruptCheckpointIsKeptAsideAndTheAgentStartsAnywayAndAdoptsWhatContainersHold() throws Exception {
        try (SimulatedGpuNode node = new SimulatedGpuNode(dir, 1)) {
            Files.createDirectories(node.stateDir);
            Path checkpoint = node.stateDir.resolve("ledger.json");
            Files.writeString(checkpoint, "{\"version\":1,\"checksum\":\"sha256:00\",\"allocations\":[]}");
            String gpu = node.sim.gpus().getFirst().uuid();
            List<String> held = List.of(gpu + "-m0", gpu + "-m1", gpu + "-m2");
            node.kubelet
                    .podResources()
                    .put(new io.omai.simulator.kubelet.PodResourcesTable.ContainerEntry(
                            "team-a", "running-0", "main", RESOURCE, held));
            AgentJvm agent = node.startAgent();
            node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
            assertThat(agent.log())
                    .contains(
                            "event=checkpoint_unusable file=" + checkpoint,
                            "does not match",
                            "kept_aside=" + node.stateDir.resolve("ledger.json.corrupt-"));
            try (var files = Files.list(node.stateDir)) {
                assertThat(files.map(f -> f.getFileName().toString()))
                        .anyMatch(name -> name.startsWith("ledger.json.corrupt-"));
            }
            // rebuilt from PodResources: the running container's allocation is adopted
            await().atMost(Duration.ofSeconds(15))
                    .until(() -> Files.exists(checkpoint)
                            && owners(node.checkpointAllocations()).contains("team-a/running-0/main"));
            assertThat(agent.alive()).isTrue();
        }
    }
}
