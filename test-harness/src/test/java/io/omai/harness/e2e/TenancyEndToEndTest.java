package io.omai.harness.e2e;

import static io.omai.harness.e2e.SimulatedGpuNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.sim.SimNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Coexistence and audit in the running agent: a GPU kubelet also reports as NVIDIA's {@code nvidia.com/gpu} is
 * withdrawn from milli-GPUs within a reconcile interval (300 ms here) and comes back when it is no longer
 * reported; a process that runs on a shared simulated GPU without the shim is caught by the NVML audit.
 */
class TenancyEndToEndTest {
    private static final String NVIDIA = "nvidia.com/gpu";

    @TempDir
    Path root;

    private SimulatedGpuNode node;
    private AgentJvm agent;

    @BeforeEach
    void start() throws Exception {
        node = new SimulatedGpuNode(root, 2);
        agent = node.startAgent();
        node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
        node.kubelet.awaitDevices(RESOURCE, devices -> devices.size() == 2000, Duration.ofSeconds(10));
    }

    @AfterEach
    void stop() throws Exception {
        node.close();
    }

    private static boolean allOf(List<Device> devices, String gpuUuid, String health) {
        return devices.stream()
                .filter(d -> d.getID().startsWith(gpuUuid + "-m"))
                .allMatch(d -> d.getHealth().equals(health));
    }

    @Test
    void aGpuKubeletAlsoReportsAsNvidiaGpuIsWithdrawnAndComesBack() {
        String gpu0 = SimNode.uuidOf(0);
        String gpu1 = SimNode.uuidOf(1);
        node.kubelet.podResources().putAllocatable(NVIDIA, List.of(gpu1));

        // one reconcile interval is 300 ms; the bound only keeps a slow CI machine from failing the test
        node.kubelet.awaitDevices(
                RESOURCE,
                devices -> allOf(devices, gpu1, "Unhealthy") && allOf(devices, gpu0, "Healthy"),
                Duration.ofSeconds(10));
        agent.awaitLog("event=gpu_withdrawn gpu=" + gpu1, Duration.ofSeconds(5));

        // kubelet offers only gpu0 now, and the agent hands out a whole GPU from it
        KubeletSimulator.Admission whole = node.kubelet.admit("team-a", "trainer-0", "main", RESOURCE, 1000);
        assertThat(whole.response().getEnvsMap()).containsEntry("CUDA_VISIBLE_DEVICES", gpu0);

        node.kubelet.podResources().putAllocatable(NVIDIA, List.of());
        node.kubelet.awaitDevices(RESOURCE, devices -> allOf(devices, gpu1, "Healthy"), Duration.ofSeconds(10));
        agent.awaitLog("event=gpu_restored gpu=" + gpu1, Duration.ofSeconds(5));
    }

    @Test
    void aProcessWithoutTheShimOnASharedGpuIsFlagged() {
        KubeletSimulator.Admission share = node.kubelet.admit("team-a", "infer-0", "main", RESOURCE, 250);
        String gpu = share.response().getEnvsMap().get("CUDA_VISIBLE_DEVICES");

        // no shim: neither LD_PRELOAD nor the allocation's files, straight onto the simulated driver
        SimNode.Started rogue = node.sim.start(
                Map.of("CUDA_VISIBLE_DEVICES", gpu), "omai-workload", "alloc", "alloc", "64MiB", "sleep", "60");
        try {
            assertThat(rogue.awaitResult("alloc", Duration.ofSeconds(20)).status())
                    .isEqualTo("CUDA_SUCCESS");
            agent.awaitLog(
                    "event=audit_violation reason=no_shim gpu=" + gpu + " pid=" + rogue.pid(), Duration.ofSeconds(20));
        } finally {
            rogue.kill();
        }
    }
}
