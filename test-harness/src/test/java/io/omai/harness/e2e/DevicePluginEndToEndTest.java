package io.omai.harness.e2e;

import static io.omai.harness.e2e.SimulatedGpuNode.GPU_MEMORY;
import static io.omai.harness.e2e.SimulatedGpuNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.kubelet.PluginEndpoint;
import io.omai.simulator.launcher.ContainerLauncher;
import io.omai.simulator.sim.SimNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent as a separate JVM on a simulated two-GPU node, driven by the kubelet simulator over real unix
 * sockets, with workloads run under the real shim on the simulated driver.
 */
class DevicePluginEndToEndTest {
    private static final long QUARTER = GPU_MEMORY / 4; // the memory of a 250 milli share

    @TempDir
    Path dir;

    private SimulatedGpuNode node;

    @BeforeEach
    void startNode() throws Exception {
        node = new SimulatedGpuNode(dir, 2);
        node.startAgent();
    }

    @AfterEach
    void stopNode() throws Exception {
        node.close();
    }

    /** Register, list 2x1000 IDs, preferred 250 on one GPU, allocate: what kubelet does to admit a pod. */
    private KubeletSimulator.Admission admitQuarterShare() throws Exception {
        KubeletSimulator kubelet = node.kubelet;
        kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
        List<Device> devices = kubelet.awaitDevices(RESOURCE, list -> list.size() == 2000, Duration.ofSeconds(10));
        assertThat(devices).allMatch(d -> d.getHealth().equals("Healthy"));
        assertThat(devices.stream()
                        .map(d -> d.getID().substring(0, d.getID().lastIndexOf("-m")))
                        .distinct())
                .containsExactly(SimNode.uuidOf(0), SimNode.uuidOf(1));
        assertThat(kubelet.plugin(RESOURCE).options().getGetPreferredAllocationAvailable())
                .isTrue();

        List<String> preferred = kubelet.plugin(RESOURCE)
                .preferredAllocation(devices.stream().map(Device::getID).toList(), List.of(), 250);
        assertThat(preferred).hasSize(250);
        assertThat(preferred.stream()
                        .map(id -> id.substring(0, id.lastIndexOf("-m")))
                        .distinct())
                .hasSize(1);

        KubeletSimulator.Admission admission = kubelet.admit("team-a", "infer-0", "main", RESOURCE, 250);
        assertThat(admission.deviceIds()).containsExactlyInAnyOrderElementsOf(preferred);
        String gpu = preferred.getFirst().substring(0, preferred.getFirst().lastIndexOf("-m"));
        assertThat(admission.response().getEnvsMap())
                .containsEntry("NVIDIA_VISIBLE_DEVICES", gpu)
                .containsEntry("OMAI_CONTROL_FILE", "/run/omai/control")
                .containsEntry("OMAI_USAGE_FILE", "/run/omai/usage")
                .containsKey("OMAI_ALLOCATION_ID");
        String allocationId = admission.response().getEnvsMap().get("OMAI_ALLOCATION_ID");
        try (AllocationFiles files = AllocationFiles.openReadOnly(node.allocationDir(allocationId))) {
            ControlSnapshot control = files.control().read();
            assertThat(control.devices()).singleElement().satisfies(device -> {
                assertThat(device.uuid()).isEqualTo(gpu);
                assertThat(device.memoryLimitBytes()).isEqualTo(QUARTER);
                assertThat(device.computeQuotaMilli()).isEqualTo(250);
            });
        }
        return admission;
    }

    private SimNode.Run runContainer(
            KubeletSimulator.Admission admission, ContainerLauncher.Isolation isolation, String... command) {
        ContainerLauncher launcher = new ContainerLauncher(dir.resolve("launcher"));
        Map<String, String> runtimeEnv = new java.util.HashMap<>(node.sim.env());
        runtimeEnv.put("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        ContainerLauncher.Launch launch =
                launcher.prepare(admission.response(), isolation, runtimeEnv, List.of(command));
        assertThat(launch.skippedDevices())
                .as("simulated GPUs have no /dev nodes")
                .contains("/dev/nvidiactl");
        return Programs.run(launch.process(), Duration.ofSeconds(60));
    }

    private void assertHeldToItsQuota(SimNode.Run run) {
        assertThat(run.first("meminfo").getLong("total"))
                .as(run.stdout() + run.stderr())
                .isEqualTo(QUARTER);
        List<SimNode.Result> allocs = run.all("alloc");
        assertThat(allocs).hasSize(2);
        assertThat(allocs.get(0).status()).as("3 GiB fits the 4 GiB quota").isEqualTo("CUDA_SUCCESS");
        assertThat(allocs.get(1).status()).as("2 GiB more does not").isEqualTo("CUDA_ERROR_OUT_OF_MEMORY");
    }

    @Test
    void inAMountNamespaceTheWorkloadSeesItsQuotaIsRefusedBeyondItAndCannotWriteTheControlFile() throws Exception {
        Optional<String> unavailable = ContainerLauncher.mountNamespaceUnavailable();
        assumeTrue(unavailable.isEmpty(), () -> "skipped: " + unavailable.orElseThrow());
        KubeletSimulator.Admission admission = admitQuarterShare();
        String workload = node.sim.program("omai-workload").toString();

        // No LD_PRELOAD: the shim arrives through the read-only /etc/ld.so.preload mount.
        assertThat(admission.response().getEnvsMap()).doesNotContainKey("LD_PRELOAD");
        SimNode.Run run = runContainer(
                admission,
                ContainerLauncher.Isolation.MOUNT_NAMESPACE,
                workload,
                "meminfo",
                "alloc",
                "alloc",
                Long.toString(3L << 30),
                "alloc",
                "alloc",
                Long.toString(2L << 30));
        assertHeldToItsQuota(run);

        SimNode.Run write = runContainer(
                admission,
                ContainerLauncher.Isolation.MOUNT_NAMESPACE,
                "/bin/sh",
                "-c",
                "cat /etc/ld.so.preload; printf x >> /run/omai/control && echo wrote-control; "
                        + "[ -w /run/omai/usage ] && echo usage-writable; echo done");
        assertThat(write.stdout())
                .contains("/usr/local/omai/lib/libomai-shim.so", "usage-writable", "done")
                .doesNotContain("wrote-control");
        assertThat(write.stderr()).contains("Read-only file system");
        String allocationId = admission.response().getEnvsMap().get("OMAI_ALLOCATION_ID");
        try (AllocationFiles files = AllocationFiles.openReadOnly(node.allocationDir(allocationId))) {
            assertThat(files.control().read().devices().getFirst().memoryLimitBytes())
                    .isEqualTo(QUARTER);
        }
    }

    @Test
    void withHostPathsTheWorkloadUnderTheShimSeesItsQuotaAndIsRefusedBeyondIt() throws Exception {
        KubeletSimulator.Admission admission = admitQuarterShare();
        SimNode.Run run = runContainer(
                admission,
                ContainerLauncher.Isolation.HOST_PATHS,
                node.sim.program("omai-workload").toString(),
                "meminfo",
                "alloc",
                "alloc",
                Long.toString(3L << 30),
                "alloc",
                "alloc",
                Long.toString(2L << 30));
        assertHeldToItsQuota(run);
    }

    @Test
    void bogusAllocateRequestsAreInvalidArgumentAndTheLedgerIsUnchanged() throws Exception {
        KubeletSimulator.Admission admission = admitQuarterShare();
        PluginEndpoint plugin = node.kubelet.plugin(RESOURCE);
        // The checkpoint is written just after Allocate answers, on the ledger's writer thread.
        String allocationId = admission.response().getEnvsOrThrow("OMAI_ALLOCATION_ID");
        org.awaitility.Awaitility.await()
                .atMost(Duration.ofSeconds(10))
                .until(() -> Files.exists(node.stateDir.resolve("ledger.json"))
                        && Files.readString(node.stateDir.resolve("ledger.json"))
                                .contains(allocationId)
                        // and reconciliation (every 300 ms) has named the owner, so the file stays as it is
                        && !Files.readString(node.stateDir.resolve("ledger.json"))
                                .contains("\"owner\" : \"\""));
        byte[] ledgerBefore = Files.readAllBytes(node.stateDir.resolve("ledger.json"));
        String gpu0 = SimNode.uuidOf(0);
        List<String> spanning = new ArrayList<>();
        for (int slot = 900; slot < 1000; slot++) {
            spanning.add(gpu0 + "-m" + slot);
            spanning.add(SimNode.uuidOf(1) + "-m" + slot);
        }
        List<List<String>> bogus = List.of(
                List.of(),
                List.of("GPU-not-on-this-node-m1"),
                List.of(gpu0 + "-m1000"),
                List.of(gpu0 + "-m5", gpu0 + "-m5"),
                spanning);
        for (List<String> ids : bogus) {
            assertThatThrownBy(() -> plugin.allocate(AllocateRequest.newBuilder()
                            .addContainerRequests(
                                    ContainerAllocateRequest.newBuilder().addAllDevicesIds(ids))
                            .build()))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                        assertThat(e.getStatus().getDescription()).isNotBlank();
                    });
        }
        assertThat(Files.readAllBytes(node.stateDir.resolve("ledger.json"))).isEqualTo(ledgerBefore);
        try (var dirs = Files.list(node.stateDir.resolve("allocations"))) {
            assertThat(dirs.map(p -> p.getFileName().toString()).toList())
                    .containsExactly(admission.response().getEnvsMap().get("OMAI_ALLOCATION_ID"));
        }
    }

    @Test
    void anInjectedXidTurnsTheGpusIdsUnhealthyAndTheyRecover() throws Exception {
        node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
        node.kubelet.awaitDevices(RESOURCE, list -> list.size() == 2000, Duration.ofSeconds(10));
        SimNode.Run inject = node.sim.run(Duration.ofSeconds(10), "omai-sim-ctl", "inject-xid", "1", "79");
        assertThat(inject.exitCode()).as(inject.stderr()).isZero();
        List<Device> unhealthy = node.kubelet.awaitDevices(
                RESOURCE,
                list -> list.stream().anyMatch(d -> d.getHealth().equals("Unhealthy")),
                Duration.ofSeconds(15));
        assertThat(unhealthy)
                .filteredOn(d -> d.getHealth().equals("Unhealthy"))
                .hasSize(1000)
                .allMatch(d -> d.getID().startsWith(SimNode.uuidOf(1)));
        node.kubelet.awaitDevices(
                RESOURCE,
                list -> list.size() == 2000
                        && list.stream().allMatch(d -> d.getHealth().equals("Healthy")),
                Duration.ofSeconds(15));
    }
}
