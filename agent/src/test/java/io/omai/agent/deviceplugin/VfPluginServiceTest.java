package io.omai.agent.deviceplugin;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.ContainerPreferredAllocationRequest;
import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.DeviceSpec;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.deviceplugin.v1beta1.PreferredAllocationRequest;
import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.IbVfManagerConfig;
import io.omai.ibvf.alloc.GpuPlacement;
import io.omai.ibvf.alloc.VfAllocation;
import io.omai.ibvf.config.NodeRebindLock;
import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.guid.FileGuidStore;
import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.inventory.IbVfMonitor;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The VF DevicePlugin service over grpc's in-process transport, on a fake sysfs with one InfiniBand HCA (NUMA 0,
 * 4 VFs) and one RoCE NIC (NUMA 1, 2 VFs) reconciled by a real {@link IbVfManager} over the fake kernel.
 */
class VfPluginServiceTest {
    private static final String RESOURCE = "omai.io/ib-vf";

    @TempDir
    Path root;

    @TempDir
    Path state;

    private FakeSysfs tree;
    private FakeKernel kernel;
    private FakePf ib;
    private FakePf eth;
    private IbVfMonitor monitor;
    private VfAllocations allocations;
    private DeviceListPublisher devices;
    private List<GpuPlacement> gpusOfAdmittedContainer = List.of();
    private Server server;
    private ManagedChannel channel;
    private DevicePluginGrpc.DevicePluginBlockingStub plugin;

    @BeforeEach
    void start() throws Exception {
        tree = FakeSysfs.create(root);
        ib = tree.connectX6Ib(0, 16);
        eth = tree.connectX6Eth(1, 8);
        kernel = new FakeKernel(tree);
        IbVfManager manager = new IbVfManager(
                new IbVfManagerConfig(
                        "worker-07",
                        GuidRange.parse("02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff"),
                        VfLinkState.AUTO,
                        new ReadinessPolicy(3, Duration.ZERO)),
                kernel,
                kernel,
                new FileGuidStore(state.resolve("guids")),
                new NodeRebindLock(state.resolve("lock")),
                duration -> {});
        manager.reconcile(ib.address(), 4);
        manager.reconcile(eth.address(), 2);
        monitor = manager.newMonitor();
        devices = new DeviceListPublisher(VfDeviceList.of(monitor.poll()));
        monitor.subscribe(snapshot -> devices.publish(VfDeviceList.of(snapshot)));
        allocations = new VfAllocations(Clock.systemUTC());
        String name = InProcessServerBuilder.generateName();
        server = InProcessServerBuilder.forName(name)
                .directExecutor()
                .addService(new VfPluginService(
                        RESOURCE, manager, monitor::current, allocations, () -> gpusOfAdmittedContainer, devices))
                .build()
                .start();
        channel = InProcessChannelBuilder.forName(name).directExecutor().build();
        plugin = DevicePluginGrpc.newBlockingStub(channel);
    }

    @AfterEach
    void stop() {
        channel.shutdownNow();
        server.shutdownNow();
    }

    private List<String> ibVfs() {
        return Stream.of(0, 1, 2, 3).map(i -> ib.vfAddress(i).value()).toList();
    }

    private List<String> ethVfs() {
        return Stream.of(0, 1).map(i -> eth.vfAddress(i).value()).toList();
    }

    private ContainerAllocateResponse allocate(String... ids) {
        return plugin.allocate(AllocateRequest.newBuilder()
                        .addContainerRequests(
                                ContainerAllocateRequest.newBuilder().addAllDevicesIds(List.of(ids)))
                        .build())
                .getContainerResponses(0);
    }

    private List<String> preferred(List<String> available, List<String> mustInclude, int size) {
        return plugin.getPreferredAllocation(PreferredAllocationRequest.newBuilder()
                        .addContainerRequests(ContainerPreferredAllocationRequest.newBuilder()
                                .addAllAvailableDeviceIDs(available)
                                .addAllMustIncludeDeviceIDs(mustInclude)
                                .setAllocationSize(size))
                        .build())
                .getContainerResponses(0)
                .getDeviceIDsList();
    }

    @Test
    void listsEveryVfByPciAddressWithThePfNumaNodeAndPushesHealthChanges() {
        Iterator<ListAndWatchResponse> stream = plugin.listAndWatch(Empty.getDefaultInstance());
        List<Device> first = stream.next().getDevicesList();
        assertThat(first)
                .extracting(Device::getID)
                .containsExactlyInAnyOrderElementsOf(
                        Stream.concat(ibVfs().stream(), ethVfs().stream()).toList());
        assertThat(first).allMatch(device -> device.getHealth().equals("Healthy"));
        assertThat(first)
                .filteredOn(device -> ibVfs().contains(device.getID()))
                .allMatch(device -> device.getTopology().getNodes(0).getID() == 0);
        assertThat(first)
                .filteredOn(device -> ethVfs().contains(device.getID()))
                .allMatch(device -> device.getTopology().getNodes(0).getID() == 1);

        kernel.setPfPortState(ib, PortState.DOWN);
        monitor.poll();
        List<Device> down = stream.next().getDevicesList();
        assertThat(down)
                .filteredOn(device -> ibVfs().contains(device.getID()))
                .hasSize(4)
                .allMatch(device -> device.getHealth().equals("Unhealthy"));
        assertThat(down)
                .filteredOn(device -> ethVfs().contains(device.getID()))
                .allMatch(device -> device.getHealth().equals("Healthy"));

        kernel.setPfPortState(ib, PortState.ACTIVE);
        tree.writeFile(eth.directory() + "/numa_node", "-1");
        monitor.poll();
        List<Device> recovered = stream.next().getDevicesList();
        assertThat(recovered).allMatch(device -> device.getHealth().equals("Healthy"));
        assertThat(recovered)
                .filteredOn(device -> ethVfs().contains(device.getID()))
                .as("NUMA -1 is unknown: no topology rather than node 0")
                .allMatch(device -> !device.hasTopology());
    }

    @Test
    void allocateReturnsTheVfsDeviceNodesAndEnvReadFromSysfs() {
        PciAddress vf = ib.vfAddress(2);
        VfAllocation expected = new io.omai.ibvf.alloc.VfDeviceNodeResolver(kernel).resolve(vf);

        ContainerAllocateResponse response = allocate(vf.value());

        assertThat(response.getDevicesList())
                .extracting(DeviceSpec::getHostPath)
                .containsExactlyElementsOf(
                        expected.deviceNodes().stream().map(n -> n.hostPath()).toList())
                .anyMatch(path -> path.matches("/dev/infiniband/uverbs\\d+"))
                .anyMatch(path -> path.matches("/dev/infiniband/umad\\d+"))
                .anyMatch(path -> path.matches("/dev/infiniband/issm\\d+"))
                .contains("/dev/infiniband/rdma_cm");
        assertThat(response.getDevicesList()).allSatisfy(spec -> {
            assertThat(spec.getContainerPath()).isEqualTo(spec.getHostPath());
            assertThat(spec.getPermissions()).isEqualTo("rw");
        });
        assertThat(response.getEnvsMap())
                .containsEntry(VfAllocation.ENV_PCI_ADDRESS, vf.value())
                .containsEntry(VfAllocation.ENV_RDMA_DEVICE, expected.rdmaDevice())
                .containsEntry(VfAllocation.ENV_NODE_GUID, expected.env().get(VfAllocation.ENV_NODE_GUID))
                .containsEntry(VfAllocation.ENV_PORT_GUID, expected.env().get(VfAllocation.ENV_PORT_GUID))
                .containsEntry("PCIDEVICE_OMAI_IO_IB_VF", vf.value());
        assertThat(allocations.current()).containsExactly(vf);
        assertThat(allocate(vf.value()))
                .as("a repeated Allocate answers the same")
                .isEqualTo(response);
    }

    @Test
    void allocateAfterARebindReturnsTheRenumberedUverbsNode() {
        PciAddress vf1 = ib.vfAddress(1);
        PciAddress vf2 = ib.vfAddress(2);
        String before1 = allocate(vf1.value()).getEnvsOrThrow(VfAllocation.ENV_UVERBS);
        String before2 = allocate(vf2.value()).getEnvsOrThrow(VfAllocation.ENV_UVERBS);

        kernel.write("bus/pci/drivers/mlx5_core/unbind", vf1.value());
        kernel.write("bus/pci/drivers/mlx5_core/unbind", vf2.value());
        kernel.write("bus/pci/drivers/mlx5_core/bind", vf2.value());
        kernel.write("bus/pci/drivers/mlx5_core/bind", vf1.value());

        ContainerAllocateResponse after = allocate(vf1.value());
        assertThat(before1).isNotEqualTo(before2);
        assertThat(after.getEnvsOrThrow(VfAllocation.ENV_UVERBS)).isEqualTo(before2);
        assertThat(after.getDevicesList())
                .extracting(DeviceSpec::getHostPath)
                .contains("/dev/infiniband/" + before2)
                .doesNotContain("/dev/infiniband/" + before1);
    }

    @Test
    void severalVfsInOneContainerGetEveryNodeOnceAndCommaSeparatedEnv() {
        ContainerAllocateResponse response =
                allocate(ib.vfAddress(0).value(), eth.vfAddress(1).value());

        assertThat(response.getDevicesList())
                .extracting(DeviceSpec::getContainerPath)
                .doesNotHaveDuplicates()
                .filteredOn(path -> path.contains("uverbs"))
                .hasSize(2);
        assertThat(response.getEnvsMap())
                .containsEntry(
                        VfAllocation.ENV_PCI_ADDRESS,
                        ib.vfAddress(0).value() + "," + eth.vfAddress(1).value())
                .containsEntry(
                        "PCIDEVICE_OMAI_IO_IB_VF",
                        ib.vfAddress(0).value() + "," + eth.vfAddress(1).value());
    }

    static Stream<Arguments> refusedAllocations() {
        return Stream.of(
                Arguments.of("no IDs", List.of(), Status.Code.INVALID_ARGUMENT, "devices_ids is empty"),
                Arguments.of(
                        "not a PCI address",
                        List.of("mlx5_3"),
                        Status.Code.INVALID_ARGUMENT,
                        "has 'mlx5_3', which is not a VF PCI address; expected IDs this plugin advertised"),
                Arguments.of(
                        "unknown VF",
                        List.of("0000:99:00.1"),
                        Status.Code.INVALID_ARGUMENT,
                        "VF 0000:99:00.1 is unknown: it is not one of the 6 VFs this node advertises as omai.io/ib-vf"),
                Arguments.of(
                        "the same VF twice",
                        List.of("0000:3b:00.1", "0000:3b:00.1"),
                        Status.Code.INVALID_ARGUMENT,
                        "names 0000:3b:00.1 twice; expected each VF once"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("refusedAllocations")
    void badAllocateRequestsAreRefusedWithWhatWasExpected(
            String what, List<String> ids, Status.Code code, String message) {
        assertThatThrownBy(() -> allocate(ids.toArray(String[]::new)))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(code);
                    assertThat(e.getStatus().getDescription()).contains(message);
                });
        assertThat(allocations.current()).isEmpty();
    }

    @Test
    void aMalformedIdIsRefusedSuggestingOnlyAnAddressThisNodeAdvertises() {
        // the InfiniBand PF's VFs go away (0000:3b:00.x), so only the Ethernet PF's remain advertised
        kernel.write("bus/pci/devices/" + ib.address() + "/sriov_numvfs", "0");
        monitor.poll();
        List<String> advertised = ethVfs();
        java.util.regex.Pattern example = java.util.regex.Pattern.compile("such as (\\S+)");
        assertThatThrownBy(() -> allocate("mlx5_3")).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            var m = example.matcher(e.getStatus().getDescription());
            assertThat(m.find()).as(e.getStatus().getDescription()).isTrue();
            assertThat(advertised).contains(m.group(1));
        });
        assertThatThrownBy(() -> preferred(List.of("mlx5_3"), List.of(), 1))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    var m = example.matcher(e.getStatus().getDescription());
                    assertThat(m.find()).as(e.getStatus().getDescription()).isTrue();
                    assertThat(advertised).contains(m.group(1));
                });
    }

    @Test
    void anUnhealthyVfIsRefusedWithItsReasonsAndNothingOfTheBatchIsRecorded() {
        kernel.setPfPortState(ib, PortState.DOWN);
        monitor.poll();

        assertThatThrownBy(() -> plugin.allocate(AllocateRequest.newBuilder()
                        .addContainerRequests(ContainerAllocateRequest.newBuilder()
                                .addDevicesIds(eth.vfAddress(0).value()))
                        .addContainerRequests(ContainerAllocateRequest.newBuilder()
                                .addDevicesIds(ib.vfAddress(0).value()))
                        .build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                    assertThat(e.getStatus().getDescription())
                            .contains("VF " + ib.vfAddress(0) + " is Unhealthy")
                            .contains("PF_PORT_NOT_ACTIVE")
                            .contains("expected a Healthy VF");
                });
        assertThat(allocations.current()).isEmpty();
    }

    @Test
    void aVfThatLostItsDriverSinceTheLastPollIsRefusedAsNotReady() {
        kernel.write("bus/pci/drivers/mlx5_core/unbind", ib.vfAddress(3).value());

        assertThatThrownBy(() -> allocate(ib.vfAddress(3).value()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                    assertThat(e.getStatus().getDescription())
                            .contains(ib.vfAddress(3).value())
                            .contains("has no RDMA device");
                });
    }

    static Stream<Arguments> preferences() {
        return Stream.of(
                Arguments.of(
                        "GPU behind the HCA's PCIe switch",
                        "switch",
                        List.of("eth0", "eth1", "ib3", "ib1"),
                        2,
                        List.of("ib1", "ib3")),
                Arguments.of(
                        "GPU known only by NUMA node 1",
                        "numa1",
                        List.of("ib0", "ib1", "eth1", "eth0"),
                        2,
                        List.of("eth0", "eth1")),
                Arguments.of(
                        "no GPU known: the HCA with most free VFs",
                        "none",
                        List.of("eth0", "ib2", "eth1", "ib0", "ib1"),
                        2,
                        List.of("ib0", "ib1")),
                Arguments.of(
                        "no GPU known, fewer free on the IB HCA",
                        "none",
                        List.of("ib2", "eth1", "eth0"),
                        1,
                        List.of("eth0")));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("preferences")
    void preferredAllocationRanksByGpuProximityElseBalancesOverHcas(
            String what, String gpu, List<String> available, int size, List<String> expected) {
        gpusOfAdmittedContainer = switch (gpu) {
            case "switch" -> List.of(GpuPlacement.at(tree.gpuBeside(ib)));
            case "numa1" -> List.of(GpuPlacement.onNumaNode(1));
            default -> List.of();
        };

        assertThat(preferred(ids(available), List.of(), size)).containsExactlyElementsOf(ids(expected));
    }

    @Test
    void preferredAllocationKeepsMustIncludeAndRefusesImpossibleSizes() {
        gpusOfAdmittedContainer = List.of(GpuPlacement.onNumaNode(1));
        assertThat(preferred(ids(List.of("ib0", "ib1", "eth0")), ids(List.of("ib1")), 2))
                .containsExactlyElementsOf(ids(List.of("ib1", "eth0")));

        assertThatThrownBy(() -> preferred(ids(List.of("ib0")), List.of(), 2))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription())
                            .isEqualTo("allocation_size 2 exceeds the 1 available VFs; expected at most that many");
                });
        assertThatThrownBy(() -> preferred(ids(List.of("ib0")), List.of(), 0))
                .isInstanceOfSatisfying(
                        StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getDescription())
                                .isEqualTo("allocation_size 0 asks for no VF; expected at least 1"));
    }

    /** "ib2" → the IB HCA's VF 2, "eth0" → the RoCE NIC's VF 0. */
    private List<String> ids(List<String> names) {
        List<String> ids = new ArrayList<>();
        for (String name : names) {
            FakePf pf = name.startsWith("ib") ? ib : eth;
            ids.add(pf.vfAddress(Integer.parseInt(name.replaceAll("\\D", ""))).value());
        }
        return ids;
    }

    @Test
    void allocationsFollowPodResources() {
        allocate(ib.vfAddress(0).value());
        allocate(ib.vfAddress(1).value());

        assertThat(allocations.reconcile(
                        List.of(ib.vfAddress(1).value(), eth.vfAddress(0).value()), Duration.ZERO))
                .containsExactly(ib.vfAddress(0));
        assertThat(allocations.current()).containsExactly(ib.vfAddress(1), eth.vfAddress(0));
        assertThat(allocations.reconcile(List.of(), Duration.ofHours(1)))
                .as("within the grace period")
                .isEmpty();
        assertThat(Map.of("vfs", allocations.current()))
                .isEqualTo(Map.of("vfs", java.util.Set.of(ib.vfAddress(1), eth.vfAddress(0))));
    }
}
