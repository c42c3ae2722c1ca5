package io.omai.harness.contract;

import static io.omai.harness.contract.DefaultTimingsNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.simulator.kubelet.Registration;
import io.omai.simulator.launcher.AgentJvm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * kubelet's side of registration, against the real agent process: a kubelet that exits leaves its
 * {@code kubelet.sock} behind (Register → ECONNREFUSED, so the agent backs off, up to
 * {@code kubelet.registrationBackoffMax} = 5 s by default); when it starts again it wipes the device-plugin
 * directory and listens on a new {@code kubelet.sock}. The agent must be registered less than a second after
 * kubelet listens, however long kubelet was down and whatever back-off was pending.
 */
class KubeletRestartContractTest {
    @TempDir
    Path dir;

    @Test
    void kubeletExitsLeavingAStaleSocketAndEachReturnIsRegisteredWithinASecond() throws Exception {
        try (DefaultTimingsNode node = new DefaultTimingsNode(dir)) {
            AgentJvm agent = node.startRegistered();
            List<Long> millis = new ArrayList<>();
            int generation = 0;
            for (int downSeconds : new int[] {1, 4, 7}) {
                node.kubelet.awaitDevices(RESOURCE, list -> list.size() == 1000, Duration.ofSeconds(10));
                int failedBefore = count(agent.log(), "event=registration_failed");
                node.kubelet.exitLeavingStaleSocket();
                assertThat(Files.exists(node.kubelet.kubeletSocket()))
                        .as("the dead kubelet's socket file stays")
                        .isTrue();
                Thread.sleep(downSeconds * 1_000L);
                assertThat(count(agent.log(), "event=registration_failed"))
                        .as("while kubelet is down the agent's registrations fail and back off")
                        .isGreaterThan(failedBefore);

                node.kubelet.comeBack();
                generation++;
                Registration registration = node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(15));
                assertThat(registration.kubeletGeneration()).isEqualTo(generation);
                millis.add(registration.nanosSinceKubeletStart() / 1_000_000);
            }
            System.out.printf(
                    "kubelet down 1 s, 4 s, 7 s with a stale kubelet.sock -> registered (ms after kubelet "
                            + "listens): %s%n",
                    millis);
            assertThat(millis)
                    .as("ms from kubelet listening to the agent's Register, after 1, 4 and 7 s down")
                    .allMatch(ms -> ms < 1_000);
            node.kubelet.awaitDevices(RESOURCE, list -> list.size() == 1000, Duration.ofSeconds(10));
            assertThat(agent.alive()).isTrue();
            assertThat(node.kubelet.refusedRegistrations()).isEmpty();
        }
    }

    private static int count(String text, String needle) {
        int count = 0;
        for (int at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
            count++;
        }
        return count;
    }
}
