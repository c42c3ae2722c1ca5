package io.omai.harness.e2e;

import static io.omai.harness.e2e.SimulatedGpuNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.simulator.kubelet.Registration;
import io.omai.simulator.launcher.AgentJvm;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.LongSummaryStatistics;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** kubelet restarts wipe the plugin's socket and recreate kubelet.sock; the agent must come back every time. */
class KubeletRestartTest {
    @TempDir
    Path dir;

    @Test
    void twentyKubeletRestartsAreEachFollowedByANewRegistrationAndAFullDeviceList() throws Exception {
        try (SimulatedGpuNode node = new SimulatedGpuNode(dir, 2)) {
            AgentJvm agent = node.startAgent();
            node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
            List<Long> millis = new ArrayList<>();
            for (int restart = 1; restart <= 20; restart++) {
                node.kubelet.restart();
                Registration registration = node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(10));
                assertThat(registration.kubeletGeneration()).isEqualTo(restart);
                node.kubelet.awaitDevices(RESOURCE, list -> list.size() == 2000, Duration.ofSeconds(5));
                millis.add(registration.nanosSinceKubeletStart() / 1_000_000);
            }
            LongSummaryStatistics stats =
                    millis.stream().mapToLong(Long::longValue).summaryStatistics();
            System.out.printf(
                    "kubelet restart -> re-registered (ms from new kubelet.sock to Register): %s; "
                            + "min %d, mean %.1f, max %d%n",
                    millis, stats.getMin(), stats.getAverage(), stats.getMax());
            // The target is < 1 s; the bound is generous so a loaded CI machine does not flake.
            assertThat(millis).allMatch(ms -> ms < 5_000);
            assertThat(agent.alive()).isTrue();
            assertThat(node.kubelet.refusedRegistrations()).isEmpty();
        }
    }

    @Test
    void anAgentStartedBeforeKubeletWaitsForKubeletSockAndThenRegisters() throws Exception {
        try (SimulatedGpuNode node = new SimulatedGpuNode(dir, 1, false)) {
            AgentJvm agent = node.startAgent();
            agent.awaitLog("event=waiting_for_kubelet", Duration.ofSeconds(10));
            assertThat(agent.log()).doesNotContain("event=registration_failed");
            node.startKubelet();
            Registration registration = node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(10));
            assertThat(registration.kubeletGeneration()).isZero();
            assertThat(node.kubelet.awaitDevices(RESOURCE, list -> list.size() == 1000, Duration.ofSeconds(5)))
                    .allMatch(d -> d.getHealth().equals("Healthy"));
            assertThat(node.kubelet.registrations()).hasSize(1);
        }
    }
}
