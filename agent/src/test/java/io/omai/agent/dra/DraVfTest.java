package io.omai.agent.dra;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.resource.v1.Device;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResult;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResultBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceSlice;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.dsl.NonDeletingOperation;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.deviceplugin.ContainerEdits;
import io.omai.agent.deviceplugin.GpuPairing;
import io.omai.agent.deviceplugin.UnixSocketGrpc;
import io.omai.agent.deviceplugin.VfDevicePlugin;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.dra.v1.Claim;
import io.omai.agent.dra.v1.DRAPluginGrpc;
import io.omai.agent.dra.v1.NodePrepareResourceResponse;
import io.omai.agent.dra.v1.NodePrepareResourcesRequest;
import io.omai.agent.dra.v1.NodeUnprepareResourcesRequest;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.tenancy.ClaimAdmission;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.LedgerNodeCapacity;
import io.omai.agent.tenancy.MutableClock;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.agent.tenancy.TenantIdentity;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import io.omai.placement.AntiAffinityPolicy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * InfiniBand VFs through DRA: the VF plugin over a fake sysfs and the DRA driver on one bookkeeper, against fabric8's
 * mock API server holding the claims kube-scheduler would have allocated.
 */
@EnableKubernetesMockClient(crud = true)
class DraVfTest {
    private static final String NODE = "node-a";
    private static final String DRIVER = "gpu.omai.io";
    private static final String VF_POOL = NODE + "-ib-vf";
    private static final long GIB = 1L << 30;
    private static final List<GpuDevice> GPUS = FakeNvml.gpus(2, 80 * GIB, 2);
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String ROOT = "pci0000:10";

    static KubernetesClient client;

    @TempDir
    Path dir;

    private final MutableClock clock = new MutableClock(Instant.parse("2026-12-01T10:00:00Z"));
    private FakePf ib;
    private FakeKernel kernel;
    private AgentConfig config;
    private AllocationLedger ledger;
    private VfDevicePlugin vfPlugin;
    private DraDriver driver;
    private final List<ManagedChannel> channels = new ArrayList<>();
    private DRAPluginGrpc.DRAPluginBlockingStub dra;

    @BeforeEach
    void start() throws Exception {
        FakeSysfs tree = FakeSysfs.create(dir.resolve("sys"));
        ib = tree.connectX6Ib(0, 4);
        kernel = new FakeKernel(tree);
        config = ConfigLoader.parse("test", """
                version: 1
                nodeName: %s
                directories:
                  devicePlugin: %s
                  podResourcesSocket: %s
                  state: %s
                ib:
                  enabled: true
                  guidRange: 02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff
                  pollInterval: 100ms
                  rebindLock: %s
                  desiredVfs: {"%s": 2}
                dra:
                  enabled: true
                  pluginsRegistryDir: %s
                  pluginDir: %s
                  cdiDir: %s
                  sliceUpdateDebounce: 0ms
                """.formatted(
                        NODE,
                        dir.resolve("dp"),
                        dir.resolve("pr/kubelet.sock"),
                        dir.resolve("state"),
                        dir.resolve("rebind.lock"),
                        ib.address(),
                        dir.resolve("registry"),
                        dir.resolve("plugin"),
                        dir.resolve("cdi")));
        openAgent();
    }

    /** The VF plugin and the DRA driver as NodeAgent wires them. */
    private void openAgent() throws Exception {
        vfPlugin = VfDevicePlugin.start(config, kernel, kernel, sysfs -> GpuPairing.UNKNOWN);
        ledger = AllocationLedger.open(
                GPUS, config.sharing(), config.directories().state(), clock);
        GpuWithdrawals withdrawals = new GpuWithdrawals();
        AllocationLedger opened = ledger;
        ReservationBook book = new ReservationBook(
                () -> LedgerNodeCapacity.of(NODE, opened, withdrawals), AntiAffinityPolicy.GPU, clock);
        ClaimAdmission admission = new ClaimAdmission(NODE, ledger, book, withdrawals);
        ContainerEdits edits = new ContainerEdits(ledger, config);
        edits.writePreloadFile();
        // GPU 0 sits beside the HCA (one root complex), GPU 1 elsewhere; PcieLocationsTest reads these from sysfs
        Map<String, String> busIds =
                Map.of(GPUS.get(0).uuid(), "0000:12:00.0", GPUS.get(1).uuid(), "0000:92:00.0");
        DevicePlaces places = new DevicePlaces() {
            @Override
            public String pciBusId(String gpuUuid) {
                return busIds.getOrDefault(gpuUuid, "");
            }

            @Override
            public String pcieRoot(String pciAddress) {
                return pciAddress.equals("0000:92:00.0") ? "pci0000:90" : ROOT;
            }
        };
        driver = DraDriver.start(
                config,
                ledger,
                admission,
                edits,
                () -> Map.of(),
                withdrawals,
                client,
                new TenantIdentity(TenantIdentity.DEFAULT_LABEL),
                places,
                Optional.of(vfPlugin.draClaims()));
        dra = DRAPluginGrpc.newBlockingStub(channel(config.dra().serviceSocket()));
    }

    private ManagedChannel channel(Path socket) {
        ManagedChannel channel = UnixSocketGrpc.channel(socket);
        channels.add(channel);
        return channel;
    }

    private void closeAgent() {
        channels.forEach(UnixSocketGrpc::close);
        channels.clear();
        driver.close();
        ledger.close();
        vfPlugin.close();
    }

    @AfterEach
    void stop() {
        closeAgent();
        client.resources(ResourceClaim.class).inAnyNamespace().delete();
        client.resources(ResourceSlice.class).delete();
        client.pods().inAnyNamespace().delete();
    }

    // --- helpers ------------------------------------------------------------------------------------------------

    private static String vfDevice(PciAddress vf) {
        return "vf-" + vf.value().replace(':', '-').replace('.', '-');
    }

    private static DeviceRequestAllocationResult result(String request, String pool, String device) {
        return new DeviceRequestAllocationResultBuilder()
                .withRequest(request)
                .withDriver(DRIVER)
                .withPool(pool)
                .withDevice(device)
                .build();
    }

    private static Claim claim(String name, List<DeviceRequestAllocationResult> results) {
        String pod = "pod-" + name;
        client.pods()
                .inNamespace("team-a")
                .resource(new PodBuilder()
                        .withNewMetadata()
                        .withNamespace("team-a")
                        .withName(pod)
                        .withUid("pod-uid-" + name)
                        .endMetadata()
                        .build())
                .createOr(NonDeletingOperation::update);
        ResourceClaim claim = new ResourceClaimBuilder()
                .withNewMetadata()
                .withNamespace("team-a")
                .withName(name)
                .endMetadata()
                .withNewSpec()
                .endSpec()
                .withNewStatus()
                .withNewAllocation()
                .withNewDevices()
                .withResults(results)
                .endDevices()
                .endAllocation()
                .addNewReservedFor()
                .withResource("pods")
                .withName(pod)
                .withUid("pod-uid-" + name)
                .endReservedFor()
                .endStatus()
                .build();
        String uid = client.resources(ResourceClaim.class)
                .inNamespace("team-a")
                .resource(claim)
                .create()
                .getMetadata()
                .getUid();
        return Claim.newBuilder()
                .setNamespace("team-a")
                .setName(name)
                .setUid(uid)
                .build();
    }

    private NodePrepareResourceResponse prepare(Claim claim) {
        return dra.nodePrepareResources(NodePrepareResourcesRequest.newBuilder()
                        .addClaims(claim)
                        .build())
                .getClaimsMap()
                .get(claim.getUid());
    }

    private String unprepare(Claim claim) {
        return dra.nodeUnprepareResources(NodeUnprepareResourcesRequest.newBuilder()
                        .addClaims(claim)
                        .build())
                .getClaimsMap()
                .get(claim.getUid())
                .getError();
    }

    private ResourceSlice slice(String name) {
        return client.resources(ResourceSlice.class).withName(name).get();
    }

    private ResourceSlice vfSlice() {
        return slice(NODE + "-gpu-omai-io-ib-vf");
    }

    private static Device device(ResourceSlice slice, String name) {
        return slice.getSpec().getDevices().stream()
                .filter(d -> d.getName().equals(name))
                .findFirst()
                .orElseThrow(() -> new AssertionError(
                        "no device " + name + " in " + slice.getMetadata().getName()));
    }

    private static List<String> taints(ResourceSlice slice, String name) {
        Device device = device(slice, name);
        return device.getTaints() == null
                ? List.of()
                : device.getTaints().stream()
                        .map(t -> t.getKey() + (t.getValue() == null ? "" : "=" + t.getValue()) + ":" + t.getEffect())
                        .toList();
    }

    /** The device plugin's Allocate of {@code vf}, as kubelet calls it. */
    private void allocateThroughDevicePlugin(PciAddress vf) {
        DevicePluginGrpc.newBlockingStub(channel(vfPlugin.pluginSocket()))
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .allocate(AllocateRequest.newBuilder()
                        .addContainerRequests(
                                ContainerAllocateRequest.newBuilder().addDevicesIds(vf.value()))
                        .build());
    }

    /** The health the device plugin's ListAndWatch gives {@code vf} now. */
    private String listedHealth(PciAddress vf) {
        Iterator<ListAndWatchResponse> stream = DevicePluginGrpc.newBlockingStub(channel(vfPlugin.pluginSocket()))
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .listAndWatch(Empty.getDefaultInstance());
        return stream.next().getDevicesList().stream()
                .filter(d -> d.getID().equals(vf.value()))
                .findFirst()
                .orElseThrow()
                .getHealth();
    }

    private JsonNode spec(Claim claim) throws Exception {
        return JSON.readTree(config.dra()
                .cdiDir()
                .resolve(DRIVER + "-" + claim.getUid() + ".json")
                .toFile());
    }

    private List<Path> specs() throws Exception {
        if (!Files.isDirectory(config.dra().cdiDir())) {
            return List.of();
        }
        try (Stream<Path> entries = Files.list(config.dra().cdiDir())) {
            return entries.filter(p -> !p.getFileName().toString().startsWith("."))
                    .toList();
        }
    }

    // --- tests --------------------------------------------------------------------------------------------------

    @Test
    void vfsArePublishedInTheirOwnPoolAndFollowHealthAndTheDevicePlugin() throws Exception {
        await().atMost(WAIT).until(() -> vfSlice() != null && slice(NODE + "-gpu-omai-io") != null);
        ResourceSlice vfs = vfSlice();
        assertThat(vfs.getSpec().getDriver()).isEqualTo(DRIVER);
        assertThat(vfs.getSpec().getNodeName()).isEqualTo(NODE);
        assertThat(vfs.getSpec().getPool().getName()).isEqualTo(VF_POOL);
        assertThat(vfs.getSpec().getPool().getResourceSliceCount()).isEqualTo(1L);
        assertThat(vfs.getSpec().getDevices())
                .extracting(Device::getName)
                .containsExactly(vfDevice(ib.vfAddress(0)), vfDevice(ib.vfAddress(1)));
        Device vf = device(vfs, vfDevice(ib.vfAddress(1)));
        assertThat(vf.getAllowMultipleAllocations())
                .as("a VF is one container's")
                .isNull();
        assertThat(vf.getCapacity()).isNullOrEmpty();
        assertThat(vf.getAttributes().get("pciAddress").getString())
                .isEqualTo(ib.vfAddress(1).value());
        assertThat(vf.getAttributes().get("pfName").getString()).isEqualTo(ib.netdev());
        assertThat(vf.getAttributes().get("numaNode").getInt()).isEqualTo(0L);
        assertThat(vf.getAttributes().get("linkType").getString()).isEqualTo("infiniband");
        assertThat(vf.getAttributes().get("resource.kubernetes.io/pcieRoot").getString())
                .isEqualTo(ROOT);
        assertThat(vf.getAttributes()).doesNotContainKey("uuid"); // what the omai-ib-vf DeviceClass selects on
        assertThat(vf.getTaints()).isNullOrEmpty();
        // the GPUs carry their PCI address and root complex, so matchAttribute can pair a GPU with a VF
        Device gpu0 = device(slice(NODE + "-gpu-omai-io"), "gpu-0");
        assertThat(gpu0.getAttributes().get("pciBusID").getString()).isEqualTo("0000:12:00.0");
        assertThat(gpu0.getAttributes().get("resource.kubernetes.io/pcieRoot").getString())
                .isEqualTo(ROOT);
        assertThat(gpu0.getAttributes().get("numaNode").getInt()).isEqualTo(0L);
        assertThat(device(slice(NODE + "-gpu-omai-io"), "gpu-1")
                        .getAttributes()
                        .get("resource.kubernetes.io/pcieRoot")
                        .getString())
                .isEqualTo("pci0000:90");
        long gpuGeneration = slice(NODE + "-gpu-omai-io").getSpec().getPool().getGeneration();

        allocateThroughDevicePlugin(ib.vfAddress(0));
        await().atMost(WAIT)
                .untilAsserted(() -> assertThat(taints(vfSlice(), vfDevice(ib.vfAddress(0))))
                        .containsExactly("omai.io/device-plugin:NoSchedule"));

        kernel.setPfPortState(ib, PortState.DOWN);
        await().atMost(WAIT)
                .untilAsserted(() -> assertThat(taints(vfSlice(), vfDevice(ib.vfAddress(1))))
                        .containsExactly("gpu.omai.io/unhealthy:NoSchedule"));
        kernel.setPfPortState(ib, PortState.ACTIVE);
        await().atMost(WAIT)
                .untilAsserted(() ->
                        assertThat(taints(vfSlice(), vfDevice(ib.vfAddress(1)))).isEmpty());
        assertThat(slice(NODE + "-gpu-omai-io").getSpec().getPool().getGeneration())
                .as("VF changes leave the GPU pool alone")
                .isEqualTo(gpuGeneration);
    }

    @Test
    void aClaimOfGpusAndAVfPreparesBothAndItsSpecHasTheVfsDeviceNodes() throws Exception {
        PciAddress vf = ib.vfAddress(1);
        Claim claim = claim(
                "gpu-vf",
                List.of(
                        result("gpus", NODE, "gpu-0"),
                        result("gpus", NODE, "gpu-1"),
                        result("vf", VF_POOL, vfDevice(vf))));

        NodePrepareResourceResponse answer = prepare(claim);

        assertThat(answer.getError()).isEmpty();
        assertThat(answer.getDevicesList())
                .extracting(d -> d.getPoolName() + "/" + d.getDeviceName())
                .containsExactly(NODE + "/gpu-0", NODE + "/gpu-1", VF_POOL + "/" + vfDevice(vf));
        assertThat(ledger.draAllocations(claim.getUid())).hasSize(1);
        JsonNode edits = spec(claim).path("devices").path(0).path("containerEdits");
        List<String> nodes = new ArrayList<>();
        edits.path("deviceNodes").forEach(n -> nodes.add(n.path("path").asText()));
        assertThat(nodes).anyMatch(p -> p.matches("/dev/infiniband/uverbs\\d+"));
        assertThat(nodes).contains("/dev/infiniband/rdma_cm");
        List<String> env = new ArrayList<>();
        edits.path("env").forEach(e -> env.add(e.asText()));
        assertThat(env).contains("PCIDEVICE_OMAI_IO_IB_VF=" + vf.value());
        assertThat(env).anyMatch(e -> e.startsWith("OMAI_")); // the GPU share's env is there too

        // one VF, one path: the device plugin lists it Unhealthy and refuses it
        assertThat(listedHealth(vf)).isEqualTo("Unhealthy");
        assertThatThrownBy(() -> allocateThroughDevicePlugin(vf))
                .isInstanceOf(StatusRuntimeException.class)
                .hasMessageContaining("VF " + vf + " is held by DRA claim " + claim.getUid());
        assertThat(vfPlugin.allocatedVfs()).containsExactly(vf);

        // a repeat answers the same
        assertThat(prepare(claim).getDevicesCount()).isEqualTo(3);

        assertThat(unprepare(claim)).isEmpty();
        assertThat(vfPlugin.allocatedVfs()).isEmpty();
        assertThat(specs()).isEmpty();
        assertThat(ledger.allocations()).isEmpty();
        assertThat(listedHealth(vf)).isEqualTo("Healthy");
        allocateThroughDevicePlugin(vf); // free again
    }

    @Test
    void aVfTheDevicePluginGaveOutIsNeverPreparedAndNothingIsLeft() throws Exception {
        PciAddress vf = ib.vfAddress(0);
        allocateThroughDevicePlugin(vf);
        Claim claim = claim("taken", List.of(result("gpus", NODE, "gpu-0"), result("vf", VF_POOL, vfDevice(vf))));

        assertThat(prepare(claim).getError())
                .contains("ResourceClaim team-a/taken")
                .contains("VF " + vf + " is handed out by the VF device plugin")
                .contains("nothing prepared");
        assertThat(ledger.allocations())
                .as("the GPU admitted first is released")
                .isEmpty();
        assertThat(specs()).isEmpty();
        assertThat(vfPlugin.allocatedVfs()).containsExactly(vf);
    }

    @Test
    void badVfResultsGetTheirOwnErrors() throws Exception {
        Claim unknown = claim("unknown-vf", List.of(result("vf", VF_POOL, "vf-0000-99-00-1")));
        DeviceRequestAllocationResult withCapacity = result("vf", VF_POOL, vfDevice(ib.vfAddress(0)));
        withCapacity.setConsumedCapacity(Map.of("milli", new Quantity("250")));
        Claim capacity = claim("vf-capacity", List.of(withCapacity));
        Claim twice = claim(
                "vf-twice",
                List.of(
                        result("a", VF_POOL, vfDevice(ib.vfAddress(0))),
                        result("b", VF_POOL, vfDevice(ib.vfAddress(0)))));
        kernel.setPfPortState(ib, PortState.DOWN);
        await().atMost(WAIT).until(() -> vfPlugin.draClaims().vfs().stream().noneMatch(v -> v.healthy()));
        Claim unhealthy = claim("unhealthy-vf", List.of(result("vf", VF_POOL, vfDevice(ib.vfAddress(1)))));

        assertThat(prepare(unknown).getError())
                .contains("device '" + VF_POOL + "/vf-0000-99-00-1'")
                .contains("no such VF")
                .contains(vfDevice(ib.vfAddress(0)));
        assertThat(prepare(capacity).getError()).contains("consumedCapacity [milli] on a VF; expected none");
        assertThat(prepare(twice).getError()).contains("holds device " + vfDevice(ib.vfAddress(0)) + " twice");
        assertThat(prepare(unhealthy).getError())
                .contains("VF " + ib.vfAddress(1) + " is Unhealthy")
                .contains("nothing prepared");
        assertThat(vfPlugin.allocatedVfs()).isEmpty();
        assertThat(specs()).isEmpty();
    }

    @Test
    void aPreparedVfClaimSurvivesARestartAndIsUnpreparedAfterIt() throws Exception {
        PciAddress vf = ib.vfAddress(1);
        Claim claim = claim("vf-only", List.of(result("vf", VF_POOL, vfDevice(vf))));
        assertThat(prepare(claim).getError()).isEmpty();
        assertThat(ledger.allocations()).as("a VF alone needs no GPU share").isEmpty();

        closeAgent();
        openAgent();

        assertThat(vfPlugin.allocatedVfs()).containsExactly(vf);
        assertThat(listedHealth(vf)).isEqualTo("Unhealthy");
        assertThatThrownBy(() -> allocateThroughDevicePlugin(vf))
                .isInstanceOf(StatusRuntimeException.class)
                .hasMessageContaining("held by DRA claim");
        assertThat(prepare(claim).getDevicesCount())
                .as("repeated after the restart")
                .isEqualTo(1);
        assertThat(unprepare(claim)).isEmpty();
        assertThat(vfPlugin.allocatedVfs()).isEmpty();
        assertThat(Files.readString(config.directories().state().resolve(VfDevicePlugin.DRA_CLAIMS_FILE)))
                .isBlank();
    }
}
