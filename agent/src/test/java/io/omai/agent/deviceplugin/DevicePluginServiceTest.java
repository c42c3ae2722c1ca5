package io.omai.agent.deviceplugin;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.ContainerPreferredAllocationRequest;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginOptions;
import io.omai.agent.deviceplugin.v1beta1.DeviceSpec;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.deviceplugin.v1beta1.Mount;
import io.omai.agent.deviceplugin.v1beta1.PreferredAllocationRequest;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The DevicePlugin service over grpc's in-process transport, with a real ledger in a temporary state dir. */
class DevicePluginServiceTest {
    private static final List<GpuDevice> GPUS = FakeNvml.gpus(2, 80L << 30, 1);

    @TempDir
    Path state;

    private Server server;
    private ManagedChannel channel;
    private AllocationLedger ledger;
    private DeviceListPublisher devices;
    private final java.util.concurrent.atomic.AtomicInteger streamsEnded =
            new java.util.concurrent.atomic.AtomicInteger();

    private DevicePluginGrpc.DevicePluginBlockingStub start(String extraYaml) throws Exception {
        AgentConfig config =
                ConfigLoader.withDirectories(ConfigLoader.parse("test", "version: 1\n" + extraYaml), null, null, state);
        ledger = AllocationLedger.open(GPUS, config.sharing(), state, Clock.systemUTC());
        ContainerEdits edits = new ContainerEdits(ledger, config);
        edits.writePreloadFile();
        devices = new DeviceListPublisher(GPUS, Map.of());
        devices.onStreamEnded(streamsEnded::incrementAndGet);
        String name = InProcessServerBuilder.generateName();
        server = InProcessServerBuilder.forName(name)
                .directExecutor()
                .addService(new DevicePluginService(ledger, edits, devices))
                .build()
                .start();
        channel = InProcessChannelBuilder.forName(name).directExecutor().build();
        return DevicePluginGrpc.newBlockingStub(channel);
    }

    @AfterEach
    void stop() {
        if (channel != null) {
            channel.shutdownNow();
        }
        if (server != null) {
            server.shutdownNow();
        }
        if (ledger != null) {
            ledger.close();
        }
    }

    private static List<String> ids(int gpu, int count) {
        return IntStream.range(0, count)
                .mapToObj(slot -> new MilliGpuId(FakeNvml.uuid(gpu), slot).id())
                .toList();
    }

    @Test
    void optionsAnnouncePreferredAllocation() throws Exception {
        DevicePluginOptions options = start("").getDevicePluginOptions(Empty.getDefaultInstance());
        assertThat(options.getGetPreferredAllocationAvailable()).isTrue();
        assertThat(options.getPreStartRequired()).isFalse();
    }

    @Test
    void listAndWatchSendsTheFullListFirstThenEveryHealthChangeIncludingRecovery() throws Exception {
        start("");
        List<ListAndWatchResponse> received = new CopyOnWriteArrayList<>();
        DevicePluginGrpc.newStub(channel).listAndWatch(Empty.getDefaultInstance(), new StreamObserver<>() {
            @Override
            public void onNext(ListAndWatchResponse value) {
                received.add(value);
            }

            @Override
            public void onError(Throwable t) {}

            @Override
            public void onCompleted() {}
        });
        await().until(() -> received.size() == 1);
        ListAndWatchResponse first = received.getFirst();
        assertThat(first.getDevicesCount()).isEqualTo(2000);
        assertThat(first.getDevicesList()).allMatch(d -> d.getHealth().equals("Healthy"));
        assertThat(first.getDevices(0).getID()).isEqualTo(FakeNvml.uuid(0) + "-m0");
        assertThat(first.getDevices(1999).getID()).isEqualTo(FakeNvml.uuid(1) + "-m999");
        assertThat(first.getDevices(1999).getTopology().getNodes(0).getID()).isEqualTo(1);
        assertThat(first.getDevicesList()).allMatch(d -> d.getID().length() <= 63);

        devices.healthChanged(Map.of(FakeNvml.uuid(1), GpuHealth.unhealthy(FakeNvml.uuid(1), "XID 79")));
        await().until(() -> received.size() == 2);
        assertThat(received.get(1).getDevicesCount()).isEqualTo(2000);
        assertThat(received.get(1).getDevicesList().subList(0, 1000))
                .allMatch(d -> d.getHealth().equals("Healthy"));
        assertThat(received.get(1).getDevicesList().subList(1000, 2000))
                .allMatch(d -> d.getHealth().equals("Unhealthy"));

        devices.healthChanged(Map.of(FakeNvml.uuid(1), GpuHealth.healthy(FakeNvml.uuid(1))));
        await().until(() -> received.size() == 3);
        assertThat(received.get(2)).isEqualTo(first);
        assertThat(devices.watchers()).isEqualTo(1);

        channel.shutdownNow(); // kubelet goes away: the stream is cancelled and the registrar told
        await().until(() -> devices.watchers() == 0 && streamsEnded.get() == 1);
    }

    @Test
    void anUnhealthyGpuIsAdvertisedWithTheIdStringsOfItsHealthyDevicesNotACopy() {
        DeviceListPublisher publisher = new DeviceListPublisher(GPUS, Map.of());
        ListAndWatchResponse healthy = publisher.current();

        publisher.healthChanged(Map.of(FakeNvml.uuid(1), GpuHealth.unhealthy(FakeNvml.uuid(1), "XID 79")));
        ListAndWatchResponse unhealthy = publisher.current();

        // One ID string per milli-GPU on the node (8 000 on 8 GPUs), not one per health state.
        for (int i = 1000; i < 2000; i++) {
            assertThat(unhealthy.getDevices(i).getHealth()).isEqualTo("Unhealthy");
            assertThat(unhealthy.getDevices(i).getID())
                    .isSameAs(healthy.getDevices(i).getID());
            assertThat(unhealthy.getDevices(i).getTopology())
                    .isEqualTo(healthy.getDevices(i).getTopology());
        }
        assertThat(unhealthy.getDevicesList().subList(0, 1000))
                .isEqualTo(healthy.getDevicesList().subList(0, 1000));
    }

    private static List<String> slots(int gpu, int from, int count) {
        return IntStream.range(from, from + count)
                .mapToObj(slot -> new MilliGpuId(FakeNvml.uuid(gpu), slot).id())
                .toList();
    }

    private static ContainerAllocateRequest container(List<String> ids) {
        return ContainerAllocateRequest.newBuilder().addAllDevicesIds(ids).build();
    }

    @Test
    void overlappingContainersOfOneAllocateAreRefusedAsAWhole() throws Exception {
        DevicePluginGrpc.DevicePluginBlockingStub plugin = start("");
        AllocateRequest request = AllocateRequest.newBuilder()
                .addContainerRequests(container(slots(0, 0, 250)))
                .addContainerRequests(container(slots(0, 100, 250)))
                .build();

        assertThatThrownBy(() -> plugin.allocate(request)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).contains("container_requests[1] and [0]");
        });
        assertThat(ledger.allocations()).isEmpty();
        try (var left = Files.list(state.resolve(AllocationLedger.ALLOCATIONS_DIR))) {
            assertThat(left).isEmpty();
        }
    }

    @Test
    void anAllocateOfTwentyThousandContainersIsRefusedAndLeavesNothing() throws Exception {
        DevicePluginGrpc.DevicePluginBlockingStub plugin = start("");
        AllocateRequest.Builder request = AllocateRequest.newBuilder();
        for (int i = 0; i < 20_000; i++) {
            request.addContainerRequests(container(slots(i % 2, (i / 2) % 1000, 1)));
        }

        assertThatThrownBy(() -> plugin.allocate(request.build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).contains("20000 containers; at most 64");
                });
        assertThat(ledger.allocations()).isEmpty();
        PreferredAllocationRequest.Builder preferred = PreferredAllocationRequest.newBuilder();
        for (int i = 0; i < 65; i++) {
            preferred.addContainerRequests(ContainerPreferredAllocationRequest.newBuilder()
                    .addAllAvailableDeviceIDs(slots(0, 0, 10))
                    .setAllocationSize(1));
        }
        assertThatThrownBy(() -> plugin.getPreferredAllocation(preferred.build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).contains("65 containers; at most 64");
                });
    }

    @Test
    void aDepartedContainersIdsAreAllocatedAgainAndARealShortfallIsExplained() throws Exception {
        DevicePluginGrpc.DevicePluginBlockingStub plugin = start("");
        for (int i = 0; i < 4; i++) {
            plugin.allocate(AllocateRequest.newBuilder()
                    .addContainerRequests(container(slots(0, i * 250, 250)))
                    .build());
        }
        // the pod holding m250..m499 left: kubelet hands its IDs out again at once
        ContainerAllocateResponse reused = plugin.allocate(AllocateRequest.newBuilder()
                        .addContainerRequests(container(slots(0, 250, 250)))
                        .build())
                .getContainerResponses(0);
        assertThat(reused.getEnvsMap()).containsEntry("CUDA_VISIBLE_DEVICES", FakeNvml.uuid(0));
        assertThat(ledger.allocations()).hasSize(4);
    }

    @Test
    void preferredAllocationKeepsAShareOnOneGpu() throws Exception {
        DevicePluginGrpc.DevicePluginBlockingStub plugin = start("");
        List<String> available = new java.util.ArrayList<>(ids(0, 1000));
        available.addAll(ids(1, 1000));
        var response = plugin.getPreferredAllocation(PreferredAllocationRequest.newBuilder()
                .addContainerRequests(ContainerPreferredAllocationRequest.newBuilder()
                        .addAllAvailableDeviceIDs(available)
                        .setAllocationSize(250))
                .build());
        List<String> chosen = response.getContainerResponses(0).getDeviceIDsList();
        assertThat(chosen).hasSize(250);
        assertThat(chosen.stream().map(id -> MilliGpuId.parse(id).uuid()).distinct())
                .hasSize(1);

        assertThatThrownBy(() -> plugin.getPreferredAllocation(PreferredAllocationRequest.newBuilder()
                        .addContainerRequests(ContainerPreferredAllocationRequest.newBuilder()
                                .addAllAvailableDeviceIDs(available)
                                .setAllocationSize(1500))
                        .build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).contains("cannot be placed without splitting");
                });
    }

    @Test
    void allocateAnswersEnvMountsAndDeviceNodesForTheShare() throws Exception {
        DevicePluginGrpc.DevicePluginBlockingStub plugin = start("");
        ContainerAllocateResponse response = plugin.allocate(AllocateRequest.newBuilder()
                        .addContainerRequests(
                                ContainerAllocateRequest.newBuilder().addAllDevicesIds(ids(1, 250)))
                        .build())
                .getContainerResponses(0);
        Allocation allocation = ledger.allocations().getFirst();
        Path dir = ledger.directory(allocation);
        assertThat(response.getEnvsMap())
                .containsExactlyInAnyOrderEntriesOf(Map.of(
                        "OMAI_CONTROL_FILE", "/run/omai/control",
                        "OMAI_USAGE_FILE", "/run/omai/usage",
                        "OMAI_ALLOCATION_ID", allocation.id(),
                        "NVIDIA_VISIBLE_DEVICES", FakeNvml.uuid(1),
                        "CUDA_VISIBLE_DEVICES", FakeNvml.uuid(1)));
        assertThat(response.getMountsList())
                .containsExactly(
                        mount("/usr/local/omai/lib/libomai-shim.so", "/usr/local/omai/lib/libomai-shim.so", true),
                        mount("/run/omai/control", dir.resolve("control").toString(), true),
                        mount("/run/omai/usage", dir.resolve("usage").toString(), false),
                        mount(
                                "/etc/ld.so.preload",
                                state.resolve("ld.so.preload").toString(),
                                true));
        assertThat(Files.readString(state.resolve("ld.so.preload"))).isEqualTo("/usr/local/omai/lib/libomai-shim.so\n");
        assertThat(response.getDevicesList())
                .extracting(DeviceSpec::getContainerPath)
                .containsExactly("/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools");
        assertThat(response.getDevicesList())
                .allMatch(
                        d -> d.getPermissions().equals("rw") && d.getHostPath().equals(d.getContainerPath()));
        assertThat(response.getCdiDevicesList()).isEmpty();
        assertThat(response.getAnnotationsMap()).containsEntry("omai.io/allocation-id", allocation.id());
    }

    @Test
    void withCdiTheGpusAreCdiNamesAndNotDeviceSpecs() throws Exception {
        DevicePluginGrpc.DevicePluginBlockingStub plugin = start("sharing: {cdi: {enabled: true}}\n");
        List<String> both = new java.util.ArrayList<>(ids(0, 1000));
        both.addAll(ids(1, 1000));
        ContainerAllocateResponse response = plugin.allocate(AllocateRequest.newBuilder()
                        .addContainerRequests(
                                ContainerAllocateRequest.newBuilder().addAllDevicesIds(both))
                        .build())
                .getContainerResponses(0);
        assertThat(response.getCdiDevicesList())
                .extracting(c -> c.getName())
                .containsExactly("nvidia.com/gpu=" + FakeNvml.uuid(0), "nvidia.com/gpu=" + FakeNvml.uuid(1));
        assertThat(response.getDevicesList()).isEmpty();
        assertThat(response.getEnvsMap())
                .containsEntry("NVIDIA_VISIBLE_DEVICES", FakeNvml.uuid(0) + "," + FakeNvml.uuid(1));
    }

    @Test
    void bogusAllocateIsInvalidArgumentAndLeavesTheLedgerUnchanged() throws Exception {
        DevicePluginGrpc.DevicePluginBlockingStub plugin = start("");
        plugin.allocate(AllocateRequest.newBuilder()
                .addContainerRequests(ContainerAllocateRequest.newBuilder().addAllDevicesIds(ids(0, 100)))
                .build());
        List<Allocation> before = ledger.allocations();
        assertThat(ledger.flush(java.time.Duration.ofSeconds(10))).isTrue();
        byte[] checkpoint = Files.readAllBytes(ledger.checkpointFile());
        List<String> spanning = new java.util.ArrayList<>(ids(0, 300).subList(200, 300));
        spanning.addAll(ids(1, 100));
        List<AllocateRequest> bogus = List.of(
                AllocateRequest.getDefaultInstance(),
                request(List.of("GPU-unknown-m3")),
                request(spanning),
                // a good container next to a bad one: the batch is refused as a whole
                AllocateRequest.newBuilder()
                        .addContainerRequests(
                                ContainerAllocateRequest.newBuilder().addAllDevicesIds(ids(1, 10)))
                        .addContainerRequests(
                                ContainerAllocateRequest.newBuilder().addDevicesIds("nonsense"))
                        .build());
        for (AllocateRequest request : bogus) {
            assertThatThrownBy(() -> plugin.allocate(request))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                        assertThat(e.getStatus().getDescription()).isNotBlank();
                    });
        }
        assertThat(ledger.allocations()).isEqualTo(before);
        assertThat(ledger.flush(java.time.Duration.ofSeconds(10))).isTrue();
        assertThat(Files.readAllBytes(ledger.checkpointFile())).isEqualTo(checkpoint);
    }

    private static AllocateRequest request(List<String> ids) {
        return AllocateRequest.newBuilder()
                .addContainerRequests(ContainerAllocateRequest.newBuilder().addAllDevicesIds(ids))
                .build();
    }

    private static Mount mount(String container, String host, boolean readOnly) {
        return Mount.newBuilder()
                .setContainerPath(container)
                .setHostPath(host)
                .setReadOnly(readOnly)
                .build();
    }
}
