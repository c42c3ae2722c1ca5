package io.omai.harness.e2e;

import static io.omai.harness.e2e.SimulatedGpuNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.deviceplugin.v1beta1.DeviceSpec;
import io.omai.agent.schedapi.v1.ContainerRequirement;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.HcaState;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.IbVfManagerConfig;
import io.omai.ibvf.alloc.VfAllocation;
import io.omai.ibvf.alloc.VfDeviceNodeResolver;
import io.omai.ibvf.config.NodeRebindLock;
import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.guid.FileGuidStore;
import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import io.omai.simulator.kubelet.KubeletSimulator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code omai.io/ib-vf} plugin end to end: the agent JVM (simulated GPUs on NUMA 0) reads a fake sysfs with an
 * InfiniBand HCA on NUMA 0 (2 VFs) and a RoCE NIC on NUMA 1 (4 VFs), offered as two resources ({@code ib.resources}:
 * omai.io/ib-vf for InfiniBand PFs, omai.io/roce-vf for Ethernet ones), registers a socket per resource with the
 * kubelet simulator, lists the VFs with their NUMA nodes, prefers, allocates, follows a uverbs renumbering and pushes
 * health. This test plays the kernel: its {@link FakeKernel} created the VFs and GUIDs before the agent started
 * (the agent's reconcile then finds nothing to change) and later rebinds VFs and takes the PF port down.
 */
class IbVfEndToEndTest {
    private static final String VF_RESOURCE = "omai.io/ib-vf";
    private static final String ROCE_RESOURCE = "omai.io/roce-vf";
    private static final String GUID_RANGE = "02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff";

    @TempDir
    Path dir;

    private SimulatedGpuNode node;
    private FakeSysfs tree;
    private FakeKernel kernel;
    private FakePf ib;
    private FakePf roce;

    @BeforeEach
    void startNode() throws Exception {
        node = new SimulatedGpuNode(dir, 1);
        tree = FakeSysfs.create(dir.resolve("sys"));
        ib = tree.connectX6Ib(0, 8);
        roce = tree.connectX6Eth(1, 8);
        kernel = new FakeKernel(tree);
        Files.createDirectories(node.stateDir);
        IbVfManager provisioning = new IbVfManager(
                new IbVfManagerConfig(
                        "sim-node",
                        GuidRange.parse(GUID_RANGE),
                        VfLinkState.AUTO,
                        new ReadinessPolicy(3, Duration.ZERO)),
                kernel,
                kernel,
                new FileGuidStore(node.stateDir.resolve("ib-vf-guids")),
                new NodeRebindLock(dir.resolve("rebind.lock")),
                duration -> {});
        provisioning.reconcile(ib.address(), 2);
        provisioning.reconcile(roce.address(), 4);
        Files.writeString(
                node.config,
                """
                ib:
                  enabled: true
                  sysfsRoot: %s
                  guidRange: %s
                  desiredVfs: {"%s": 2, "%s": 4}
                  pollInterval: 200ms
                  rebindLock: %s
                  resources:
                    - {name: omai.io/ib-vf, linkTypes: [infiniband]}
                    - {name: omai.io/roce-vf, linkTypes: [ethernet]}
                """.formatted(dir.resolve("sys"), GUID_RANGE, ib.address(), roce.address(), dir.resolve("rebind.lock")),
                StandardOpenOption.APPEND);
        node.startAgent();
        node.kubelet.awaitRegistration(VF_RESOURCE, Duration.ofSeconds(30));
        node.kubelet.awaitRegistration(ROCE_RESOURCE, Duration.ofSeconds(30));
    }

    @AfterEach
    void stopNode() throws Exception {
        node.close();
    }

    private List<String> vfs(FakePf pf, int count) {
        return IntStream.range(0, count).mapToObj(i -> pf.vfAddress(i).value()).toList();
    }

    @Test
    void registersListsVfsWithTopologyPrefersTheGpusNumaNodeAndAllocatesTheirDeviceNodes() {
        KubeletSimulator kubelet = node.kubelet;
        List<Device> devices = kubelet.awaitDevices(
                VF_RESOURCE,
                list -> list.size() == 2
                        && list.stream().allMatch(d -> d.getHealth().equals("Healthy")),
                Duration.ofSeconds(30));
        // InfiniBand VFs only: a pod asking for InfiniBand must never be handed a RoCE VF
        assertThat(devices).extracting(Device::getID).containsExactlyInAnyOrderElementsOf(vfs(ib, 2));
        assertThat(devices).allMatch(d -> d.getTopology().getNodes(0).getID() == 0);
        List<Device> roceDevices = kubelet.awaitDevices(
                ROCE_RESOURCE,
                list -> list.size() == 4
                        && list.stream().allMatch(d -> d.getHealth().equals("Healthy")),
                Duration.ofSeconds(30));
        assertThat(roceDevices).extracting(Device::getID).containsExactlyInAnyOrderElementsOf(vfs(roce, 4));
        assertThat(roceDevices).allMatch(d -> d.getTopology().getNodes(0).getID() == 1);

        // A pod asking for a RoCE VF gets one of the RoCE NIC's, through that resource's own plugin.
        KubeletSimulator.Admission vfOnly = kubelet.admit("team-a", "rdma-0", "main", ROCE_RESOURCE, 1);
        assertThat(vfOnly.deviceIds()).containsExactly(roce.vfAddress(0).value());
        assertThat(vfOnly.response().getEnvsMap()).containsKey("PCIDEVICE_OMAI_IO_ROCE_VF");
        // and the InfiniBand plugin refuses a RoCE VF outright
        assertThatThrownBy(() -> kubelet.plugin(VF_RESOURCE)
                        .allocate(List.of(roce.vfAddress(1).value())))
                .isInstanceOf(StatusRuntimeException.class);

        // A pod with a GPU (NUMA 0) and a VF: kubelet allocates one resource after the other; the VF lands on NUMA 0.
        kubelet.admit("team-a", "trainer-0", "main", RESOURCE, 500);
        KubeletSimulator.Admission paired = kubelet.admit("team-a", "trainer-0", "main", VF_RESOURCE, 1);
        String vf = paired.deviceIds().getFirst();
        assertThat(vfs(ib, 2)).as("the VF of the GPU's NUMA node").contains(vf);

        VfAllocation expected = new VfDeviceNodeResolver(kernel).resolve(io.omai.ibvf.model.PciAddress.of(vf));
        ContainerAllocateResponse response = paired.response();
        assertThat(response.getDevicesList())
                .extracting(DeviceSpec::getHostPath)
                .containsExactlyElementsOf(
                        expected.deviceNodes().stream().map(n -> n.hostPath()).toList());
        assertThat(response.getDevicesList())
                .allMatch(spec -> spec.getPermissions().equals("rw")
                        && spec.getContainerPath().equals(spec.getHostPath()));
        assertThat(response.getEnvsMap())
                .containsEntry(VfAllocation.ENV_PCI_ADDRESS, vf)
                .containsEntry(VfAllocation.ENV_RDMA_DEVICE, expected.rdmaDevice())
                .containsEntry(VfAllocation.ENV_NODE_GUID, expected.env().get(VfAllocation.ENV_NODE_GUID))
                .containsKey(VfAllocation.ENV_PORT_GUID);
    }

    @Test
    void allocateAfterARebindHandsOutTheRenumberedUverbsNode() {
        node.kubelet.awaitDevices(VF_RESOURCE, list -> list.size() == 2, Duration.ofSeconds(30));
        String vf0 = ib.vfAddress(0).value();
        String vf1 = ib.vfAddress(1).value();
        String uverbsOf0 =
                node.kubelet.plugin(VF_RESOURCE).allocate(List.of(vf0)).getEnvsOrThrow(VfAllocation.ENV_UVERBS);
        String uverbsOf1 =
                new VfDeviceNodeResolver(kernel).resolve(ib.vfAddress(1)).env().get(VfAllocation.ENV_UVERBS);
        assertThat(uverbsOf0).isNotEqualTo(uverbsOf1);

        // unbound both, bound in the other order: the kernel's lowest-free numbering swaps their uverbs nodes
        kernel.write("bus/pci/drivers/mlx5_core/unbind", vf0);
        kernel.write("bus/pci/drivers/mlx5_core/unbind", vf1);
        kernel.write("bus/pci/drivers/mlx5_core/bind", vf1);
        kernel.write("bus/pci/drivers/mlx5_core/bind", vf0);

        // A poll may have caught the VFs unbound (Unhealthy, refused) until the next one: retry until it answers.
        ContainerAllocateResponse after = Awaitility.await()
                .atMost(Duration.ofSeconds(30))
                .pollInterval(Duration.ofMillis(100))
                .ignoreExceptionsInstanceOf(StatusRuntimeException.class)
                .until(() -> node.kubelet.plugin(VF_RESOURCE).allocate(List.of(vf0)), response -> true);
        assertThat(after.getEnvsOrThrow(VfAllocation.ENV_UVERBS)).isEqualTo(uverbsOf1);
        assertThat(after.getDevicesList())
                .extracting(DeviceSpec::getHostPath)
                .contains("/dev/infiniband/" + uverbsOf1)
                .doesNotContain("/dev/infiniband/" + uverbsOf0);
    }

    @Test
    void aPfPortGoingDownIsPushedAsUnhealthyRefusedAtAllocateAndRecovers() {
        node.kubelet.awaitDevices(
                VF_RESOURCE,
                list -> list.size() == 2
                        && list.stream().allMatch(d -> d.getHealth().equals("Healthy")),
                Duration.ofSeconds(30));

        kernel.setPfPortState(ib, PortState.DOWN);
        node.kubelet.awaitDevices(
                VF_RESOURCE,
                list -> list.size() == 2
                        && list.stream().allMatch(d -> d.getHealth().equals("Unhealthy")),
                Duration.ofSeconds(30));
        assertThat(node.kubelet.awaitDevices(ROCE_RESOURCE, list -> list.size() == 4, Duration.ofSeconds(30)))
                .allMatch(d -> d.getHealth().equals("Healthy"));
        assertThatThrownBy(() -> node.kubelet
                        .plugin(VF_RESOURCE)
                        .allocate(List.of(ib.vfAddress(0).value())))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                    assertThat(e.getStatus().getDescription()).contains("PF_PORT_NOT_ACTIVE");
                });

        kernel.setPfPortState(ib, PortState.ACTIVE);
        node.kubelet.awaitDevices(
                VF_RESOURCE,
                list -> list.size() == 2
                        && list.stream().allMatch(d -> d.getHealth().equals("Healthy")),
                Duration.ofSeconds(30));
        assertThat(node.kubelet
                        .plugin(VF_RESOURCE)
                        .allocate(List.of(ib.vfAddress(0).value()))
                        .getEnvsOrThrow(VfAllocation.ENV_PCI_ADDRESS))
                .isEqualTo(ib.vfAddress(0).value());
    }

    @Test
    void schedulersSeeTheHcasTheirFreeVfsAndResourcesAndFitVfs() throws Exception {
        node.kubelet.awaitDevices(VF_RESOURCE, list -> list.size() == 2, Duration.ofSeconds(30));
        int port = ConfigLoader.load(node.config).schedulerApi().port();
        ManagedChannel channel = ManagedChannelBuilder.forAddress("127.0.0.1", port)
                .usePlaintext()
                .build();
        try {
            NodeAgentGrpc.NodeAgentBlockingStub api =
                    NodeAgentGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
            NodeState state = Awaitility.await()
                    .atMost(Duration.ofSeconds(30))
                    .until(
                            () -> api.getNodeState(GetNodeStateRequest.getDefaultInstance()),
                            s -> s.getHcasCount() == 2
                                    && s.getHcasList().stream()
                                                    .mapToInt(HcaState::getVfsFree)
                                                    .sum()
                                            == 6);
            HcaState ibHca = state.getHcasList().stream()
                    .filter(h -> h.getPciAddress().equals(ib.address().value()))
                    .findFirst()
                    .orElseThrow();
            assertThat(ibHca.getLinkLayer()).isEqualTo("InfiniBand");
            assertThat(ibHca.getResourceName()).isEqualTo(VF_RESOURCE);
            assertThat(ibHca.getVfsTotal()).isEqualTo(2);
            assertThat(ibHca.getFreeVfIdsList()).containsExactlyElementsOf(vfs(ib, 2));
            assertThat(ibHca.getNumaNode()).isZero();
            // the fake tree puts the PF under a switch's downstream port
            assertThat(ibHca.getPcieSwitch()).isNotEmpty().isNotEqualTo(ibHca.getPciAddress());
            HcaState roceHca = state.getHcasList().stream()
                    .filter(h -> h.getPciAddress().equals(roce.address().value()))
                    .findFirst()
                    .orElseThrow();
            assertThat(roceHca.getLinkLayer()).isEqualTo("Ethernet");
            assertThat(roceHca.getResourceName()).isEqualTo(ROCE_RESOURCE);
            assertThat(roceHca.getVfsFree()).isEqualTo(4);
            assertThat(roceHca.getQosCapabilitiesList()).contains("max_tx_rate");

            // Fit {vfs: 1} is feasible and proposes an InfiniBand VF; with vf_resource, a RoCE one
            FitResponse fit = api.fit(FitRequest.newBuilder()
                    .setTenant("team-a")
                    .addContainers(ContainerRequirement.newBuilder()
                            .setName("main")
                            .setMilli(500)
                            .setVfs(1))
                    .build());
            assertThat(fit.getFeasible())
                    .as("reasons: %s", fit.getReasonsList())
                    .isTrue();
            assertThat(vfs(ib, 2)).contains(fit.getAssignments(0).getVfIds(0));
            FitResponse roceFit = api.fit(FitRequest.newBuilder()
                    .setTenant("team-a")
                    .addContainers(ContainerRequirement.newBuilder()
                            .setName("main")
                            .setVfs(4)
                            .setVfResource(ROCE_RESOURCE))
                    .build());
            assertThat(roceFit.getFeasible()).isTrue();
            assertThat(roceFit.getAssignments(0).getVfIdsList()).containsExactlyInAnyOrderElementsOf(vfs(roce, 4));

            // a pod with a GPU share and a VF: listed as an allocation with its pod, container, GPU, milli and VF
            node.kubelet.admit("team-a", "trainer-0", "main", RESOURCE, 500);
            String vf = node.kubelet
                    .admit("team-a", "trainer-0", "main", VF_RESOURCE, 1)
                    .deviceIds()
                    .getFirst();
            NodeState after = Awaitility.await()
                    .atMost(Duration.ofSeconds(30))
                    .until(
                            () -> api.getNodeState(GetNodeStateRequest.getDefaultInstance()),
                            // the GPU side's owner and the VF's are both learned from PodResources
                            s -> s.getAllocationsList().stream()
                                    .anyMatch(a -> a.getVfIdsCount() > 0
                                            && a.getPodName().equals("trainer-0")
                                            && !a.getGpuUuid().isEmpty()));
            assertThat(after.getAllocationsList()).singleElement().satisfies(a -> {
                assertThat(a.getPodNamespace()).isEqualTo("team-a");
                assertThat(a.getPodName()).isEqualTo("trainer-0");
                assertThat(a.getContainer()).isEqualTo("main");
                assertThat(a.getTenant()).isEqualTo("team-a");
                assertThat(a.getMilli()).isEqualTo(500);
                assertThat(a.getGpuUuid()).isEqualTo(after.getGpus(0).getUuid());
                assertThat(a.getMemoryBytes()).isPositive();
                assertThat(a.getVfIdsList()).containsExactly(vf);
            });
            assertThat(after.getHcasList().stream()
                            .mapToInt(HcaState::getVfsFree)
                            .sum())
                    .isEqualTo(5);
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }
}
