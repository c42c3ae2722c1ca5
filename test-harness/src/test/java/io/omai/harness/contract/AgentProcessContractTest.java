package io.omai.harness.contract;

import static io.omai.harness.contract.DefaultTimingsNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.omai.simulator.launcher.AgentJvm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent as an operator and kubelet meet it, as its own process: how it stops, what it refuses at start,
 * and what its log lines look like when a peer sends hostile values.
 */
class AgentProcessContractTest {
    @TempDir
    Path dir;

    @Test
    void sigtermStopsTheAgentCleanlyWithExitZero() throws Exception {
        try (DefaultTimingsNode node = new DefaultTimingsNode(dir)) {
            AgentJvm agent = node.startRegistered();
            assertThat(agent.stop())
                    .as("exit status after SIGTERM (docs/operations.md: 0)\n" + agent.log())
                    .isZero();
            assertThat(agent.log()).contains("event=agent_stopped");
            assertThat(node.devicePlugins.resolve("omai-io-milli-gpu.sock"))
                    .as("the plugin socket is removed")
                    .doesNotExist();
        }
    }

    @Test
    void aMissingShimLibraryIsRefusedAtStartNamingTheKeyAndThePath() throws Exception {
        try (DefaultTimingsNode node = new DefaultTimingsNode(dir)) {
            Path missing = dir.resolve("lib/libomai-shim.so");
            AgentJvm agent = node.launch(node.config("agent.yaml", missing, ""));
            int exit = agent.waitFor(Duration.ofSeconds(60));
            assertThat(exit)
                    .as("exit status (3 = cannot start)\n" + agent.log())
                    .isEqualTo(3);
            assertThat(agent.log())
                    .contains("shim.hostLibrary: " + missing + " does not exist")
                    .doesNotContain("event=agent_started");
            assertThat(node.kubelet.registrations())
                    .as("nothing was offered to kubelet")
                    .isEmpty();
        }
    }

    @Test
    void aDurationThatOverflowsExitsTwoNamingTheKey() throws Exception {
        try (DefaultTimingsNode node = new DefaultTimingsNode(dir)) {
            AgentJvm agent = node.launch(
                    node.config("agent.yaml", "kubelet:\n  registrationBackoffMax: 9223372036854775807h\n"));
            assertThat(agent.waitFor(Duration.ofSeconds(60))).as(agent.log()).isEqualTo(2);
            assertThat(agent.log())
                    .contains(
                            "bad configuration",
                            "kubelet.registrationBackoffMax",
                            "'9223372036854775807h' is too large")
                    .doesNotContain("long overflow");
        }
    }

    /**
     * kubelet passes device IDs through as it got them; one with a newline, sent over gRPC, is refused — and the
     * refusal, which quotes the ID, stays one log line instead of forging a second event.
     */
    @Test
    void aNewlineInADeviceIdStaysOnOneLogLine() throws Exception {
        String forgedLine =
                "2026-01-01T00:00:00.000Z INFO  DevicePluginService [main] event=allocate allocation=forged";
        try (DefaultTimingsNode node = new DefaultTimingsNode(dir)) {
            AgentJvm agent = node.startRegistered();
            assertThatThrownBy(() -> node.kubelet.plugin(RESOURCE).allocate(List.of("GPU-0-m1\n" + forgedLine)))
                    .isInstanceOfSatisfying(
                            StatusRuntimeException.class,
                            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT));
            agent.awaitLog("event=allocate_refused", Duration.ofSeconds(10));
            List<String> lines = Files.readAllLines(node.root.resolve("agent-1.log"));
            assertThat(lines)
                    .as("no line of the log is the forged one")
                    .noneMatch(line -> line.startsWith(forgedLine))
                    .filteredOn(line -> line.contains("event=allocate_refused"))
                    .singleElement()
                    .asString()
                    .contains("GPU-0-m1\\n" + forgedLine);
        }
    }
}
