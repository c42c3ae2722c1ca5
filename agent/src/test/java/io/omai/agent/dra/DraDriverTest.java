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
import io.fabric8.kubernetes.api.model.resource.v1.DeviceTaint;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceSlice;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.grpc.ManagedChannel;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.deviceplugin.ContainerEdits;
import io.omai.agent.deviceplugin.UnixSocketGrpc;
import io.omai.agent.dra.registration.v1.InfoRequest;
import io.omai.agent.dra.registration.v1.PluginInfo;
import io.omai.agent.dra.registration.v1.RegistrationGrpc;
import io.omai.agent.dra.registration.v1.RegistrationStatus;
import io.omai.agent.dra.v1.Claim;
import io.omai.agent.dra.v1.DRAPluginGrpc;
import io.omai.agent.dra.v1.NodePrepareResourceResponse;
import io.omai.agent.dra.v1.NodePrepareResourcesRequest;
import io.omai.agent.dra.v1.NodeUnprepareResourcesRequest;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.tenancy.AdmissionGate;
import io.omai.agent.tenancy.AdmissionRefusal;
import io.omai.agent.tenancy.ClaimAdmission;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.LedgerNodeCapacity;
import io.omai.agent.tenancy.MutableClock;
import io.omai.agent.tenancy.NodePods;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.agent.tenancy.TenantIdentity;
import io.omai.placement.AntiAffinityPolicy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The DRA driver over real unix sockets, against fabric8's mock API server (CRUD mode) holding the claims kube-scheduler
 * would have allocated, with a real ledger in a temporary state directory.
 */
@EnableKubernetesMockClient(crud = true)
class DraDriverTest {
    private static final String NODE = "node-a";
    private static final String DRIVER = "gpu.omai.io";
    private static final long GIB = 1L << 30;
    private static final List<GpuDevice> GPUS = FakeNvml.gpus(2, 80 * GIB, 1);
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final ObjectMapper JSON = new ObjectMapper();

    static KubernetesClient client;

    @TempDir
    Path root;

    private final MutableClock clock = new MutableClock(Instant.parse("2026-12-01T10:00:00Z"));
    private final Map<String, GpuHealth> health = new ConcurrentHashMap<>();
    private AgentConfig config;
    private AllocationLedger ledger;
    private GpuWithdrawals withdrawals;
    private ReservationBook book;
    private DraDriver driver;
    private ManagedChannel channel;
    private DRAPluginGrpc.DRAPluginBlockingStub dra;

    @BeforeEach
    void start() throws Exception {
        config = ConfigLoader.withDirectories(
                ConfigLoader.parse(
                        "test",
                        "version: 1\nnodeName: " + NODE + "\ndra:\n  enabled: true\n  pluginsRegistryDir: "
                                + root.resolve("registry") + "\n  pluginDir: " + root.resolve("plugin")
                                + "\n  cdiDir: " + root.resolve("cdi") + "\n  sliceUpdateDebounce: 0ms\n"),
                null,
                null,
                root.resolve("state"));
        GPUS.forEach(gpu -> health.put(gpu.uuid(), GpuHealth.healthy(gpu.uuid())));
        openAgent();
    }

    /** The agent's DRA side as NodeAgent wires it: ledger, book, admission, edits, driver. */
    private void openAgent() throws Exception {
        ledger = AllocationLedger.open(
                GPUS, config.sharing(), config.directories().state(), clock);
        withdrawals = new GpuWithdrawals();
        GpuWithdrawals shared = withdrawals;
        AllocationLedger opened = ledger;
        book = new ReservationBook(() -> LedgerNodeCapacity.of(NODE, opened, shared), AntiAffinityPolicy.GPU, clock);
        ClaimAdmission admission = new ClaimAdmission(NODE, ledger, book, withdrawals);
        admission.reportTo(new io.omai.agent.kube.KubeEvents(client, NODE, clock));
        ContainerEdits edits = new ContainerEdits(ledger, config);
        edits.writePreloadFile();
        driver = DraDriver.start(
                config,
                ledger,
                admission,
                edits,
                () -> Map.copyOf(health),
                withdrawals,
                client,
                new TenantIdentity(TenantIdentity.DEFAULT_LABEL));
        channel = UnixSocketGrpc.channel(config.dra().serviceSocket());
        dra = DRAPluginGrpc.newBlockingStub(channel);
    }

    private void closeAgent() {
        UnixSocketGrpc.close(channel);
        driver.close();
        ledger.close();
    }

    @AfterEach
    void stop() {
        closeAgent();
        client.resources(ResourceClaim.class).inAnyNamespace().delete();
        client.resources(ResourceSlice.class).delete();
        client.pods().inAnyNamespace().delete();
        client.v1().events().inAnyNamespace().delete();
    }

    // --- claims as kube-scheduler writes them ------------------------------------------------------------------

    private static DeviceRequestAllocationResult result(String device, Map<String, Quantity> consumed) {
        return new DeviceRequestAllocationResultBuilder()
                .withRequest("gpu")
                .withDriver(DRIVER)
                .withPool(NODE)
                .withDevice(device)
                .withConsumedCapacity(consumed)
                .build();
    }

    private static Map<String, Quantity> share(int milli, String memory) {
        return Map.of("milli", new Quantity(Integer.toString(milli)), "memory", new Quantity(memory));
    }

    /** A claim in {@code namespace}, reserved for a pod of that namespace, allocated to {@code results}. */
    private static Claim claim(String namespace, String name, List<DeviceRequestAllocationResult> results) {
        String pod = "pod-" + name;
        client.pods()
                .inNamespace(namespace)
                .resource(new PodBuilder()
                        .withNewMetadata()
                        .withNamespace(namespace)
                        .withName(pod)
                        .withUid("pod-uid-" + name)
                        .endMetadata()
                        .build())
                .createOr(io.fabric8.kubernetes.client.dsl.NonDeletingOperation::update);
        ResourceClaim claim = new ResourceClaimBuilder()
                .withNewMetadata()
                .withNamespace(namespace)
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
        // the API server names the claim's UID
        String uid = client.resources(ResourceClaim.class)
                .inNamespace(namespace)
                .resource(claim)
                .create()
                .getMetadata()
                .getUid();
        return Claim.newBuilder()
                .setNamespace(namespace)
                .setName(name)
                .setUid(uid)
                .build();
    }

    private Map<String, NodePrepareResourceResponse> prepare(Claim... claims) {
        return dra.nodePrepareResources(NodePrepareResourcesRequest.newBuilder()
                        .addAllClaims(List.of(claims))
                        .build())
                .getClaimsMap();
    }

    private Map<String, String> unprepare(Claim... claims) {
        Map<String, String> errors = new java.util.LinkedHashMap<>();
        dra.nodeUnprepareResources(NodeUnprepareResourcesRequest.newBuilder()
                        .addAllClaims(List.of(claims))
                        .build())
                .getClaimsMap()
                .forEach((uid, answer) -> errors.put(uid, answer.getError()));
        return errors;
    }

    private Path spec(Claim claim) {
        return config.dra().cdiDir().resolve(DRIVER + "-" + claim.getUid() + ".json");
    }

    private List<Path> leftInState() throws Exception {
        Path allocations = config.directories().state().resolve(AllocationLedger.ALLOCATIONS_DIR);
        try (Stream<Path> entries = Files.list(allocations)) {
            return entries.toList();
        }
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

    private ResourceSlice slice() {
        return client.resources(ResourceSlice.class)
                .withName(NODE + "-gpu-omai-io")
                .get();
    }

    private static List<String> taints(ResourceSlice slice, String device) {
        Device found = slice.getSpec().getDevices().stream()
                .filter(d -> d.getName().equals(device))
                .findFirst()
                .orElseThrow();
        List<String> taints = new ArrayList<>();
        for (DeviceTaint taint : found.getTaints() == null ? List.<DeviceTaint>of() : found.getTaints()) {
            taints.add(taint.getKey() + (taint.getValue() == null ? "" : "=" + taint.getValue()) + ":"
                    + taint.getEffect());
        }
        return taints;
    }

    // --- registration -------------------------------------------------------------------------------------------

    @Test
    void getInfoAnswersAsKubeletsPluginWatcherExpects() {
        ManagedChannel registration =
                UnixSocketGrpc.channel(root.resolve("registry").resolve(DRIVER + "-reg.sock"));
        try {
            PluginInfo info = RegistrationGrpc.newBlockingStub(registration).getInfo(InfoRequest.getDefaultInstance());
            assertThat(info.getType()).isEqualTo("DRAPlugin");
            assertThat(info.getName()).isEqualTo(DRIVER);
            assertThat(info.getEndpoint())
                    .isEqualTo(root.resolve("plugin").resolve("dra.sock").toString());
            assertThat(info.getSupportedVersionsList()).containsExactly("v1.DRAPlugin", "v1beta1.DRAPlugin");
            RegistrationGrpc.newBlockingStub(registration)
                    .notifyRegistrationStatus(RegistrationStatus.newBuilder()
                            .setPluginRegistered(true)
                            .build());
            assertThat(driver.registered()).isTrue();
        } finally {
            UnixSocketGrpc.close(registration);
        }
    }

    @Test
    void socketsComeBackWhenKubeletDeletesThemAndAfterARefusedRegistration() throws Exception {
        Files.delete(driver.serviceSocket());
        Files.delete(driver.registrationSocket());
        await().atMost(WAIT)
                .until(() -> Files.exists(driver.serviceSocket()) && Files.exists(driver.registrationSocket()));
        Object before = Files.readAttributes(
                        driver.registrationSocket(), java.nio.file.attribute.BasicFileAttributes.class)
                .fileKey();
        ManagedChannel registration = UnixSocketGrpc.channel(driver.registrationSocket());
        try {
            RegistrationGrpc.newBlockingStub(registration)
                    .notifyRegistrationStatus(RegistrationStatus.newBuilder()
                            .setPluginRegistered(false)
                            .setError("version not supported")
                            .build());
        } finally {
            UnixSocketGrpc.close(registration);
        }
        await().atMost(WAIT)
                .until(() -> Files.exists(driver.registrationSocket())
                        && !before.equals(Files.getLastModifiedTime(driver.registrationSocket())));
        assertThat(driver.registered()).isFalse();
        // the fresh service socket serves
        assertThat(prepare()).isEmpty();
    }

    // --- prepare / unprepare ------------------------------------------------------------------------------------

    @Test
    void prepareRecordsTheShareAsAllocateDoesAndWritesItsCdiSpec() throws Exception {
        Claim claim = claim("team-a", "share", List.of(result("gpu-0", share(250, "20Gi"))));

        NodePrepareResourceResponse answer = prepare(claim).get(claim.getUid());

        assertThat(answer.getError()).isEmpty();
        assertThat(answer.getDevicesCount()).isEqualTo(1);
        assertThat(answer.getDevices(0).getPoolName()).isEqualTo(NODE);
        assertThat(answer.getDevices(0).getDeviceName()).isEqualTo("gpu-0");
        assertThat(answer.getDevices(0).getRequestNamesList()).containsExactly("gpu");
        assertThat(answer.getDevices(0).getCdiDeviceIdsList()).containsExactly(DRIVER + "/claim=" + claim.getUid());

        Allocation allocation = ledger.draAllocations(claim.getUid()).getFirst();
        assertThat(allocation.milliPerGpu()).isEqualTo(Map.of(GPUS.get(0).uuid(), 250));
        assertThat(allocation.tenant()).isEqualTo("team-a");
        DeviceQuota quota = ledger.spec(allocation).devices().getFirst();
        assertThat(quota.memoryLimitBytes()).isEqualTo(20 * GIB);
        assertThat(quota.computeQuotaMilli()).isEqualTo(250);
        Path directory = ledger.directory(allocation);
        assertThat(directory.resolve(AllocationFiles.CONTROL)).isRegularFile();
        assertThat(directory.resolve(AllocationFiles.USAGE)).isRegularFile();

        JsonNode spec = JSON.readTree(spec(claim).toFile());
        assertThat(spec.get("kind").asText()).isEqualTo(DRIVER + "/claim");
        assertThat(spec.get("cdiVersion").asText()).isEqualTo("0.6.0");
        JsonNode device = spec.get("devices").get(0);
        assertThat(device.get("name").asText()).isEqualTo(claim.getUid());
        List<String> env = new ArrayList<>();
        device.get("containerEdits").get("env").forEach(e -> env.add(e.asText()));
        assertThat(env)
                .contains(
                        "OMAI_CONTROL_FILE=" + ContainerEdits.CONTAINER_CONTROL_FILE,
                        "OMAI_USAGE_FILE=" + ContainerEdits.CONTAINER_USAGE_FILE,
                        "OMAI_ALLOCATION_ID=" + allocation.id(),
                        "CUDA_VISIBLE_DEVICES=" + GPUS.get(0).uuid());
        Map<String, String> mounts = new java.util.HashMap<>();
        device.get("containerEdits")
                .get("mounts")
                .forEach(m -> mounts.put(
                        m.get("containerPath").asText(),
                        m.get("hostPath").asText() + " "
                                + m.get("options").get(0).asText()));
        assertThat(mounts)
                .containsEntry(
                        ContainerEdits.CONTAINER_CONTROL_FILE, directory.resolve(AllocationFiles.CONTROL) + " ro")
                .containsEntry(ContainerEdits.CONTAINER_USAGE_FILE, directory.resolve(AllocationFiles.USAGE) + " rw")
                .containsEntry(
                        ContainerEdits.CONTAINER_LD_SO_PRELOAD,
                        config.directories().state().resolve(ContainerEdits.HOST_PRELOAD_FILE) + " ro")
                .containsEntry(
                        config.shim().containerLibrary().toString(),
                        config.shim().hostLibrary() + " ro");
        List<String> nodes = new ArrayList<>();
        device.get("containerEdits")
                .get("deviceNodes")
                .forEach(n -> nodes.add(n.get("path").asText()));
        assertThat(nodes).contains("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm");
        assertThat(Files.getPosixFilePermissions(spec(claim)))
                .isEqualTo(java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
    }

    @Test
    void aClaimWithoutConsumedCapacityTakesWholeGpus() throws Exception {
        Claim claim = claim("team-a", "whole", List.of(result("gpu-0", null), result("gpu-1", null)));

        assertThat(prepare(claim).get(claim.getUid()).getError()).isEmpty();

        Allocation allocation = ledger.draAllocations(claim.getUid()).getFirst();
        assertThat(allocation.milliPerGpu())
                .isEqualTo(Map.of(GPUS.get(0).uuid(), 1000, GPUS.get(1).uuid(), 1000));
        assertThat(ledger.spec(allocation).devices())
                .extracting(DeviceQuota::memoryLimitBytes)
                .containsOnly(80 * GIB);
    }

    @Test
    void prepareIsIdempotentAndUnprepareReleasesEverythingAndIsIdempotent() throws Exception {
        Claim claim = claim("team-a", "share", List.of(result("gpu-0", share(250, "20Gi"))));
        NodePrepareResourceResponse first = prepare(claim).get(claim.getUid());
        byte[] specBytes = Files.readAllBytes(spec(claim));

        NodePrepareResourceResponse again = prepare(claim, claim).get(claim.getUid());

        assertThat(again).isEqualTo(first);
        assertThat(ledger.allocations()).hasSize(1);
        assertThat(Files.readAllBytes(spec(claim))).isEqualTo(specBytes);

        assertThat(unprepare(claim)).isEqualTo(Map.of(claim.getUid(), ""));
        assertThat(ledger.allocations()).isEmpty();
        assertThat(specs()).isEmpty();
        ledger.flush(WAIT);
        await().atMost(WAIT).until(() -> leftInState().isEmpty());

        assertThat(unprepare(claim)).isEqualTo(Map.of(claim.getUid(), ""));
        Claim never = Claim.newBuilder()
                .setNamespace("team-a")
                .setName("never")
                .setUid("uid-never")
                .build();
        assertThat(unprepare(never)).isEqualTo(Map.of("uid-never", ""));
    }

    @Test
    void aPreparedClaimSurvivesARestartAndIsUnpreparedAfterIt() throws Exception {
        Claim claim = claim("team-a", "share", List.of(result("gpu-0", share(500, "40Gi"))));
        NodePrepareResourceResponse before = prepare(claim).get(claim.getUid());
        String allocationId = ledger.draAllocations(claim.getUid()).getFirst().id();
        assertThat(ledger.flush(WAIT)).isTrue();

        closeAgent();
        openAgent();

        assertThat(ledger.draAllocations(claim.getUid()))
                .singleElement()
                .satisfies(a -> assertThat(a.id()).isEqualTo(allocationId))
                .satisfies(a -> assertThat(a.claim().memoryBytesPerGpu()).isEqualTo(40 * GIB));
        // PodResources never lists a DRA claim: reconciling with an empty list keeps it
        clock.advance(Duration.ofHours(1));
        ledger.reconcile(List.of(), Duration.ofSeconds(60));
        assertThat(ledger.draAllocations(claim.getUid())).hasSize(1);
        // the device plugin still may not use its GPU
        await().atMost(WAIT).until(() -> withdrawals.isWithdrawn(GPUS.get(0).uuid()));

        assertThat(prepare(claim).get(claim.getUid())).isEqualTo(before);
        assertThat(ledger.allocations()).hasSize(1);
        assertThat(unprepare(claim)).isEqualTo(Map.of(claim.getUid(), ""));
        assertThat(ledger.allocations()).isEmpty();
        assertThat(specs()).isEmpty();
    }

    @Test
    void badClaimsGetTheirOwnErrorsAndLeaveNothingBehind() throws Exception {
        Claim unknownDevice = claim("team-a", "unknown-device", List.of(result("gpu-7", null)));
        Claim overMilli = claim("team-a", "over-milli", List.of(result("gpu-0", share(1500, "1Gi"))));
        Claim overMemory = claim("team-a", "over-memory", List.of(result("gpu-0", share(250, "100Gi"))));
        Claim malformedKey =
                claim("team-a", "malformed-key", List.of(result("gpu-0", Map.of("cores", new Quantity("4")))));
        Claim fractionalMilli =
                claim("team-a", "fractional", List.of(result("gpu-0", Map.of("milli", new Quantity("250m")))));
        DeviceRequestAllocationResult otherPool = result("gpu-0", null);
        otherPool.setPool("node-b");
        Claim wrongPool = claim("team-a", "wrong-pool", List.of(otherPool));
        Claim twoShares = claim(
                "team-a",
                "two-shares",
                List.of(result("gpu-0", share(250, "1Gi")), result("gpu-1", share(250, "1Gi"))));
        Claim missing = Claim.newBuilder()
                .setNamespace("team-a")
                .setName("missing")
                .setUid("uid-missing")
                .build();
        Claim staleUid = Claim.newBuilder()
                .setNamespace("team-a")
                .setName("over-milli")
                .setUid("uid-recreated")
                .build();
        DeviceRequestAllocationResult foreign = result("gpu-0", null);
        foreign.setDriver("gpu.nvidia.com");
        Claim otherDriver = claim("team-a", "other-driver", List.of(foreign));

        Map<String, NodePrepareResourceResponse> answers = prepare(
                unknownDevice,
                overMilli,
                overMemory,
                malformedKey,
                fractionalMilli,
                wrongPool,
                twoShares,
                missing,
                staleUid,
                otherDriver);

        assertThat(answers.get(unknownDevice.getUid()).getError())
                .contains("device 'node-a/gpu-7'")
                .contains("no such device")
                .contains("gpu-0, gpu-1");
        assertThat(answers.get(overMilli.getUid()).getError()).contains("milli 1500 is outside 1..1000");
        assertThat(answers.get(overMemory.getUid()).getError())
                .contains("memory " + 100 * GIB + " bytes is outside 1.." + 80 * GIB);
        assertThat(answers.get(malformedKey.getUid()).getError())
                .contains("consumedCapacity has 'cores'; expected only milli and memory");
        assertThat(answers.get(fractionalMilli.getUid()).getError()).contains("milli '250m' is not a whole number");
        assertThat(answers.get(wrongPool.getUid()).getError()).contains("pool 'node-b' is not this node's");
        assertThat(answers.get(twoShares.getUid()).getError()).contains("expected one share of one GPU or whole GPUs");
        assertThat(answers.get("uid-missing").getError()).contains("ResourceClaim team-a/missing does not exist");
        assertThat(answers.get("uid-recreated").getError()).contains("kubelet asked for uid uid-recreated");
        // kubelet sends a driver only claims with results for it: another driver's claim here is a mismatch
        assertThat(answers.get(otherDriver.getUid()).getError())
                .contains("ResourceClaim team-a/other-driver")
                .contains("no result for driver gpu.omai.io")
                .contains("its results are for gpu.nvidia.com");
        assertThat(answers.get(otherDriver.getUid()).getDevicesCount()).isZero();
        assertThat(answers).hasSize(10);

        assertThat(ledger.allocations()).isEmpty();
        assertThat(specs()).isEmpty();
        ledger.flush(WAIT);
        assertThat(leftInState()).isEmpty();
        assertThat(withdrawals.current()).isEmpty();
    }

    @Test
    void aClaimWithResultsForUsAndAnotherDriverPreparesOnlyOurs() throws Exception {
        DeviceRequestAllocationResult foreign = result("nic-0", null);
        foreign.setDriver("sriovnetwork.k8snetworkplumbingwg.io");
        foreign.setRequest("nic");
        Claim both = claim("team-a", "both", List.of(result("gpu-0", share(250, "10Gi")), foreign));

        NodePrepareResourceResponse answer = prepare(both).get(both.getUid());

        assertThat(answer.getError()).isEmpty();
        assertThat(answer.getDevicesList()).extracting(d -> d.getDeviceName()).containsExactly("gpu-0");
        assertThat(ledger.draAllocations(both.getUid())).hasSize(1);
    }

    @Test
    void aSpecThatCannotBeWrittenLeavesNothingAndNeverReleasesARunningClaim() throws Exception {
        Files.writeString(config.dra().cdiDir(), "a file where the CDI directory should be");
        Claim claim = claim("team-a", "share", List.of(result("gpu-0", share(250, "10Gi"))));

        assertThat(prepare(claim).get(claim.getUid()).getError())
                .contains("cannot write its CDI spec")
                .contains("nothing prepared");
        assertThat(ledger.allocations()).isEmpty();
        ledger.flush(WAIT);
        await().atMost(WAIT).until(() -> leftInState().isEmpty());

        Files.delete(config.dra().cdiDir());
        assertThat(prepare(claim).get(claim.getUid()).getError()).isEmpty();
        Files.delete(spec(claim));
        Files.delete(config.dra().cdiDir());
        Files.writeString(config.dra().cdiDir(), "again");
        // kubelet repeats the prepare of a claim whose container runs: the failure leaves the claim prepared
        assertThat(prepare(claim).get(claim.getUid()).getError()).contains("the claim stays prepared as before");
        assertThat(ledger.draAllocations(claim.getUid())).hasSize(1);
    }

    @Test
    void aNewClaimOnAnUnhealthyGpuIsRefusedAndAPreparedOneIsRepeated() throws Exception {
        Claim running = claim("team-a", "running", List.of(result("gpu-1", share(250, "10Gi"))));
        NodePrepareResourceResponse before = prepare(running).get(running.getUid());
        health.put(GPUS.get(1).uuid(), GpuHealth.unhealthy(GPUS.get(1).uuid(), "XID 79"));
        Claim late = claim("team-a", "late", List.of(result("gpu-1", share(250, "10Gi"))));

        assertThat(prepare(late).get(late.getUid()).getError())
                .contains("device gpu-1 (GPU " + GPUS.get(1).uuid() + ") is unhealthy: XID 79");
        assertThat(ledger.draAllocations(late.getUid())).isEmpty();
        assertThat(prepare(running).get(running.getUid())).isEqualTo(before);
    }

    @Test
    void anUnallocatedClaimIsRefused() {
        Claim claim = claim("team-a", "pending", List.of());
        client.resources(ResourceClaim.class)
                .inNamespace("team-a")
                .withName("pending")
                .edit(c -> {
                    c.getStatus().setAllocation(null);
                    return c;
                });
        assertThat(prepare(claim).get(claim.getUid()).getError()).contains("is not allocated");
    }

    // --- tenants ------------------------------------------------------------------------------------------------

    @Test
    void twoTenantsAreNeverPreparedOnOneGpu() throws Exception {
        Claim first = claim("team-a", "a1", List.of(result("gpu-0", share(250, "10Gi"))));
        Claim intruder = claim("team-b", "b1", List.of(result("gpu-0", share(250, "10Gi"))));
        Claim sameTenant = claim("team-a", "a2", List.of(result("gpu-0", share(250, "10Gi"))));

        assertThat(prepare(first).get(first.getUid()).getError()).isEmpty();
        String refused = prepare(intruder).get(intruder.getUid()).getError();
        assertThat(prepare(sameTenant).get(sameTenant.getUid()).getError()).isEmpty();

        assertThat(refused)
                .contains("team-b/b1")
                .contains("tenant 'team-b'")
                .contains(GPUS.get(0).uuid());
        assertThat(ledger.allocations()).extracting(Allocation::tenant).containsOnly("team-a");
        assertThat(ledger.draAllocations(intruder.getUid())).isEmpty();
        assertThat(spec(intruder)).doesNotExist();
        await().atMost(WAIT)
                .untilAsserted(() -> assertThat(client.v1()
                                .events()
                                .inNamespace("team-b")
                                .list()
                                .getItems())
                        .anySatisfy(event -> {
                            assertThat(event.getReason()).isEqualTo("GpuClaimRefused");
                            assertThat(event.getInvolvedObject().getName()).isEqualTo("pod-b1");
                            assertThat(event.getMessage()).contains("tenant 'team-b'");
                        }));
        // and the slice steers the scheduler: gpu-0 is tainted with its tenant
        await().atMost(WAIT)
                .untilAsserted(
                        () -> assertThat(taints(slice(), "gpu-0")).containsExactly("omai.io/tenant=team-a:NoSchedule"));
    }

    @Test
    void theTenantLabelOfTheReservedPodNamesTheTenant() throws Exception {
        Claim claim = claim("ns-x", "labelled", List.of(result("gpu-1", share(100, "1Gi"))));
        client.pods().inNamespace("ns-x").withName("pod-labelled").edit(p -> {
            p.getMetadata().setLabels(Map.of(TenantIdentity.DEFAULT_LABEL, "team-x"));
            return p;
        });
        assertThat(prepare(claim).get(claim.getUid()).getError()).isEmpty();
        assertThat(ledger.draAllocations(claim.getUid()).getFirst().tenant()).isEqualTo("team-x");
    }

    // --- one bookkeeper -----------------------------------------------------------------------------------------

    private static List<String> ids(int gpu, int from, int count) {
        return IntStream.range(from, from + count)
                .mapToObj(slot -> new MilliGpuId(GPUS.get(gpu).uuid(), slot).id())
                .toList();
    }

    @Test
    void aGpuHoldingADraClaimIsNeverGivenOutByTheDevicePlugin() throws Exception {
        Claim claim = claim("team-a", "share", List.of(result("gpu-0", share(250, "10Gi"))));
        assertThat(prepare(claim).get(claim.getUid()).getError()).isEmpty();
        AdmissionGate gate = new AdmissionGate(NODE, ledger, book, NodePods.NONE, withdrawals, Duration.ZERO);
        // below the gate, under the ledger's lock, an Allocate racing the withdrawal is refused all the same
        assertThatThrownBy(() -> ledger.allocate(ids(0, 500, 250)))
                .isInstanceOf(LedgerException.InvalidRequest.class)
                .hasMessageContaining("holds DRA claim");
        await().atMost(WAIT).until(() -> withdrawals.isWithdrawn(GPUS.get(0).uuid()));

        // free slots of the same GPU: the device plugin's Allocate refuses (the GPU is advertised Unhealthy too)
        assertThatThrownBy(() -> gate.allocate(ids(0, 500, 250)))
                .isInstanceOf(AdmissionRefusal.Withdrawn.class)
                .hasMessageContaining("holds DRA claim " + claim.getUid());
        assertThat(withdrawals
                        .overlay(Map.copyOf(health))
                        .get(GPUS.get(0).uuid())
                        .healthy())
                .isFalse();
        // even the slots the claim holds: kubelet would hand them out if the withdrawal raced its list
        List<String> held = ledger.draAllocations(claim.getUid()).getFirst().deviceIdStrings();
        assertThatThrownBy(() -> gate.allocate(held)).isInstanceOf(AdmissionRefusal.Withdrawn.class);
        // and below the gate, under the ledger's lock, a racing Allocate is refused all the same
        assertThatThrownBy(() -> ledger.allocate(ids(0, 500, 250)))
                .isInstanceOf(LedgerException.InvalidRequest.class)
                .hasMessageContaining("holds DRA claim");
        assertThat(ledger.allocations()).hasSize(1);

        // the other GPU is the device plugin's as before
        assertThat(gate.allocate(ids(1, 0, 250)).milli()).isEqualTo(250);
        // once the claim is unprepared, GPU 0 is the device plugin's again
        unprepare(claim);
        await().atMost(WAIT).until(() -> !withdrawals.isWithdrawn(GPUS.get(0).uuid()));
        assertThat(gate.allocate(ids(0, 0, 500)).milli()).isEqualTo(500);
    }

    @Test
    void aGpuTheDevicePluginGaveOutIsNeverPreparedForAClaim() throws Exception {
        Allocation byDevicePlugin = ledger.allocate(ids(1, 0, 250));
        Claim claim = claim("team-a", "share", List.of(result("gpu-1", share(250, "10Gi"))));

        String error = prepare(claim).get(claim.getUid()).getError();

        assertThat(error).contains("GPU " + GPUS.get(1).uuid() + " is given out by the device-plugin path");
        assertThat(ledger.allocations()).containsExactly(byDevicePlugin);
        assertThat(spec(claim)).doesNotExist();
        await().atMost(WAIT)
                .untilAsserted(
                        () -> assertThat(taints(slice(), "gpu-1")).containsExactly("omai.io/device-plugin:NoSchedule"));
    }

    @Test
    void aGpuAnotherPluginHandsOutIsNeverPrepared() throws Exception {
        withdrawals.replace(Map.of(GPUS.get(1).uuid(), "kubelet reports it as nvidia.com/gpu of pod x/y"));
        Claim claim = claim("team-a", "share", List.of(result("gpu-1", share(250, "10Gi"))));

        assertThat(prepare(claim).get(claim.getUid()).getError())
                .contains("is withdrawn from sharing: kubelet reports it as nvidia.com/gpu");
        assertThat(ledger.allocations()).isEmpty();
        assertThat(spec(claim)).doesNotExist();
        await().atMost(WAIT)
                .untilAsserted(
                        () -> assertThat(taints(slice(), "gpu-1")).containsExactly("omai.io/withdrawn:NoSchedule"));
    }

    // --- slices -------------------------------------------------------------------------------------------------

    @Test
    void theSliceShowsTheNodesGpusAndFollowsHealthAndOccupancy() throws Exception {
        await().atMost(WAIT).until(() -> slice() != null);
        ResourceSlice slice = slice();
        assertThat(slice.getSpec().getDriver()).isEqualTo(DRIVER);
        assertThat(slice.getSpec().getNodeName()).isEqualTo(NODE);
        assertThat(slice.getSpec().getPool().getName()).isEqualTo(NODE);
        assertThat(slice.getSpec().getPool().getResourceSliceCount()).isEqualTo(1L);
        long generation = slice.getSpec().getPool().getGeneration();
        assertThat(slice.getSpec().getDevices()).extracting(Device::getName).containsExactly("gpu-0", "gpu-1");
        for (int i = 0; i < GPUS.size(); i++) {
            Device device = slice.getSpec().getDevices().get(i);
            GpuDevice gpu = GPUS.get(i);
            assertThat(device.getAllowMultipleAllocations()).isTrue();
            assertThat(device.getAttributes().get("uuid").getString()).isEqualTo(gpu.uuid());
            assertThat(device.getAttributes().get("productName").getString()).isEqualTo(gpu.name());
            assertThat(device.getAttributes().get("numaNode").getInt()).isEqualTo(gpu.numaNode());
            assertThat(device.getAttributes().get("memory").getInt()).isEqualTo(gpu.memoryBytes());
            assertThat(device.getAttributes().get("class").getString()).isEqualTo("omai-gpu");
            assertThat(device.getCapacity().get("milli").getValue()).isEqualTo(new Quantity("1000"));
            assertThat(device.getCapacity().get("memory").getValue()).isEqualTo(new Quantity(Long.toString(80 * GIB)));
            assertThat(device.getCapacity()
                            .get("memory")
                            .getRequestPolicy()
                            .getValidRange()
                            .getStep())
                    .isEqualTo(new Quantity(Long.toString(1L << 20)));
            assertThat(device.getCapacity()
                            .get("memory")
                            .getRequestPolicy()
                            .getValidRange()
                            .getMin())
                    .isEqualTo(new Quantity(Long.toString(256L << 20)));
            assertThat(device.getTaints()).isNullOrEmpty();
        }

        health.put(GPUS.get(1).uuid(), GpuHealth.unhealthy(GPUS.get(1).uuid(), "XID 79"));
        driver.healthChanged();
        await().atMost(WAIT)
                .untilAsserted(
                        () -> assertThat(taints(slice(), "gpu-1")).containsExactly("gpu.omai.io/unhealthy:NoSchedule"));
        long afterHealth = slice().getSpec().getPool().getGeneration();
        assertThat(afterHealth).isGreaterThan(generation);

        Claim claim = claim("team-a", "share", List.of(result("gpu-0", share(250, "10Gi"))));
        prepare(claim);
        await().atMost(WAIT)
                .untilAsserted(
                        () -> assertThat(taints(slice(), "gpu-0")).containsExactly("omai.io/tenant=team-a:NoSchedule"));
        long afterPrepare = slice().getSpec().getPool().getGeneration();
        assertThat(afterPrepare).isGreaterThan(afterHealth);

        unprepare(claim);
        health.put(GPUS.get(1).uuid(), GpuHealth.healthy(GPUS.get(1).uuid()));
        driver.healthChanged();
        await().atMost(WAIT).untilAsserted(() -> {
            assertThat(taints(slice(), "gpu-0")).isEmpty();
            assertThat(taints(slice(), "gpu-1")).isEmpty();
        });
        assertThat(slice().getSpec().getPool().getGeneration()).isGreaterThan(afterPrepare);
        // nothing changed: no write, no bump
        long settled = driver.publishSlicesNow();
        assertThat(driver.publishSlicesNow()).isEqualTo(settled);
    }
}
