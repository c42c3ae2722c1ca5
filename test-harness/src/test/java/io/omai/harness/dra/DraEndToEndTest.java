package io.omai.harness.dra;

import static io.omai.harness.dra.DraNode.DRIVER;
import static io.omai.harness.dra.DraNode.GPU_MEMORY;
import static io.omai.harness.dra.DraNode.MILLI_GPU;
import static io.omai.harness.dra.DraNode.NODE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.resource.v1.Device;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResultBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceTaint;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceSlice;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.simulator.dra.DraKubeletSimulator;
import io.omai.simulator.dra.DraPluginClient;
import io.omai.simulator.dra.DraPluginClient.ClaimRef;
import io.omai.simulator.dra.DraPluginClient.ClaimResult;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.ContainerEdits;
import io.omai.simulator.sim.SimNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent as a DRA driver, end to end and from kubelet's side: the DRA kubelet simulator registers it through
 * plugins_registry, kube-scheduler's allocator allocates claims made from the component's example templates
 * against the agent's own ResourceSlice and the component's DeviceClasses, kubelet prepares them, the CDI spec is
 * applied by the container launcher and the workload runs under the real shim.
 */
class DraEndToEndTest {
    private static final long SHARE_MEMORY = 20L << 30; // the example template's 20Gi
    private static final Duration SLICE_WAIT = Duration.ofSeconds(15);

    @TempDir
    Path root;

    private DraNode node;

    @BeforeEach
    void start() {
        node = new DraNode(root, 2);
        node.startAgent();
    }

    @AfterEach
    void stop() {
        node.close();
    }

    private static boolean hasTaint(ResourceSlice slice, String device, String key, String value) {
        return slice.getSpec().getDevices().stream()
                .filter(d -> d.getName().equals(device))
                .flatMap(d ->
                        d.getTaints() == null ? java.util.stream.Stream.<DeviceTaint>empty() : d.getTaints().stream())
                .anyMatch(t -> t.getKey().equals(key)
                        && (value == null || value.equals(t.getValue()))
                        && t.getEffect().equals("NoSchedule"));
    }

    private static String allocationIdOf(ContainerEdits edits) {
        return edits.env().get("OMAI_ALLOCATION_ID");
    }

    private Path allocationDir(String allocationId) {
        return node.node.paths().state().resolve("allocations").resolve(allocationId);
    }

    @Test
    void theSliceMatchesTheNodeAndAShareRunsHeldToItsConsumedMemoryAndMilliThenUnprepares() throws Exception {
        ResourceSlice slice = node.awaitSlice(s -> true, SLICE_WAIT);
        assertThat(slice.getSpec().getPool().getName()).isEqualTo(NODE);
        assertThat(slice.getSpec().getDevices()).extracting(Device::getName).containsExactly("gpu-0", "gpu-1");
        for (int i = 0; i < 2; i++) {
            Device device = slice.getSpec().getDevices().get(i);
            SimNode.Gpu gpu = node.node.sim().gpus().get(i);
            assertThat(device.getAllowMultipleAllocations()).isTrue();
            assertThat(device.getAttributes().get("uuid").getString()).isEqualTo(SimNode.uuidOf(i));
            assertThat(device.getAttributes().get("productName").getString()).isEqualTo(gpu.name());
            assertThat(device.getAttributes().get("memory").getInt()).isEqualTo(GPU_MEMORY);
            assertThat(device.getAttributes().get("numaNode").getInt()).isEqualTo((long) gpu.numaNode());
            assertThat(device.getCapacity().get("milli").getValue()).isEqualTo(new Quantity("1000"));
            assertThat(Quantity.getAmountInBytes(
                                    device.getCapacity().get("memory").getValue())
                            .longValueExact())
                    .isEqualTo(GPU_MEMORY);
            assertThat(device.getCapacity()
                            .get("memory")
                            .getRequestPolicy()
                            .getValidRange()
                            .getStep())
                    .isEqualTo(new Quantity(Long.toString(1L << 20)));
            assertThat(device.getTaints())
                    .as("a fresh node: nothing occupies %s", device.getName())
                    .isNullOrEmpty();
        }
        // what the component's DeviceClasses and example claims name exists on the devices the agent publishes
        Device published = slice.getSpec().getDevices().getFirst();
        for (String name : manifestNames("device\\.attributes\\[\"" + DRIVER + "\"\\]\\.(\\w+)")) {
            assertThat(published.getAttributes())
                    .as("attribute named in the manifests")
                    .containsKey(name);
        }
        for (String name : manifestNames("matchAttribute: " + DRIVER + "/(\\w+)")) {
            assertThat(published.getAttributes())
                    .as("matchAttribute in the examples")
                    .containsKey(name);
        }
        for (String name : manifestNames("(?m)^ {16}(\\w+): \"?\\d")) {
            assertThat(published.getCapacity())
                    .as("capacity requested in the examples")
                    .containsKey(name);
        }
        assertThat(manifestNames("(?m)^ {16}(\\w+): \"?\\d")).containsExactlyInAnyOrder("milli", "memory");
        assertThat(manifestNames("device\\.attributes\\[\"" + DRIVER + "\"\\]\\.(\\w+)"))
                .contains("uuid");

        Pod pod = node.createPod("team-a", "infer-0", "team-a");
        ResourceClaim claim = node.allocatedShare(pod, "infer-0-gpu", "team-a");
        var result = claim.getStatus().getAllocation().getDevices().getResults().getFirst();
        assertThat(result.getConsumedCapacity())
                .containsEntry("milli", new Quantity("250"))
                .hasEntrySatisfying(
                        "memory",
                        q -> assertThat(Quantity.getAmountInBytes(q).longValueExact())
                                .isEqualTo(SHARE_MEMORY));

        ClaimResult prepared = node.dra.prepare(pod, List.of("infer-0-gpu")).get("infer-0-gpu");
        assertThat(prepared.devices()).singleElement().satisfies(device -> {
            assertThat(device.pool()).isEqualTo(NODE);
            assertThat(device.device()).isEqualTo(result.getDevice());
            assertThat(device.requestNames()).containsExactly("gpu");
        });
        ContainerEdits edits = node.edits(prepared);
        String gpuUuid = SimNode.uuidOf(Integer.parseInt(result.getDevice().substring("gpu-".length())));
        assertThat(edits.env()).containsEntry("NVIDIA_VISIBLE_DEVICES", gpuUuid);
        String allocationId = allocationIdOf(edits);
        try (AllocationFiles files = AllocationFiles.openReadOnly(allocationDir(allocationId))) {
            ControlSnapshot control = files.control().read();
            assertThat(control.devices()).singleElement().satisfies(device -> {
                assertThat(device.uuid()).isEqualTo(gpuUuid);
                assertThat(device.memoryLimitBytes()).isEqualTo(SHARE_MEMORY);
                assertThat(device.computeQuotaMilli()).isEqualTo(250);
            });
        }

        SimNode.Run run = node.run(
                edits,
                root.resolve("launcher"),
                node.node.sim().program("omai-workload").toString(),
                "meminfo",
                "alloc",
                "alloc",
                Long.toString(19L << 30),
                "alloc",
                "alloc",
                Long.toString(2L << 30),
                "free",
                "duty",
                "kernel",
                "2",
                "100",
                "20");
        assertThat(run.first("meminfo").getLong("total"))
                .as("the consumed memory is the limit the workload sees\n%s%s", run.stdout(), run.stderr())
                .isEqualTo(SHARE_MEMORY);
        assertThat(run.all("alloc"))
                .extracting(SimNode.Result::status)
                .containsExactly("CUDA_SUCCESS", "CUDA_ERROR_OUT_OF_MEMORY");
        SimNode.Result duty = run.first("duty");
        double achieved = (double) duty.getLong("busy_us") / duty.getLong("elapsed_us");
        // wanting 100 % of the GPU, it gets about its 250 milli; a loose bound so a loaded machine cannot flake it
        assertThat(achieved).as("share of the GPU achieved: %s", duty).isBetween(0.05, 0.45);

        // kubelet prepares again after its own restart: same devices, same allocation, one spec
        ClaimResult again = node.dra.prepare(pod, List.of("infer-0-gpu")).get("infer-0-gpu");
        assertThat(again.cdiDeviceIds()).isEqualTo(prepared.cdiDeviceIds());
        assertThat(allocationIdOf(node.edits(again))).isEqualTo(allocationId);
        assertThat(node.cdiSpecs()).hasSize(1);
        node.awaitSlice(s -> hasTaint(s, result.getDevice(), "omai.io/tenant", "team-a"), SLICE_WAIT);

        node.dra.unprepare(pod, List.of("infer-0-gpu"));
        assertThat(node.cdiSpecs()).isEmpty();
        node.dra.unprepare(pod, List.of("infer-0-gpu")); // idempotent: kubelet may ask again
        node.awaitSlice(s -> !hasTaint(s, result.getDevice(), "omai.io/tenant", null), SLICE_WAIT);

        // health follows the GPU: an XID that takes it down taints its device for the scheduler
        SimNode.Run xid = node.node.sim().run(Duration.ofSeconds(10), "omai-sim-ctl", "inject-xid", "1", "79");
        assertThat(xid.exitCode()).as(xid.stderr()).isZero();
        node.awaitSlice(s -> hasTaint(s, "gpu-1", DRIVER + "/unhealthy", null), SLICE_WAIT);
    }

    @Test
    void twoTenantsAreNeverPreparedOnOneGpu() {
        Pod a = node.createPod("team-a", "a-0", "team-a");
        ResourceClaim claimA = node.allocatedShare(a, "a-0-gpu", "team-a");
        node.dra.prepare(a, List.of("a-0-gpu"));
        String gpuOfA = DraNode.device(claimA);
        node.awaitSlice(s -> hasTaint(s, gpuOfA, "omai.io/tenant", "team-a"), SLICE_WAIT);

        // the scheduler, honouring the taint, puts team-b elsewhere
        Pod b = node.createPod("team-b", "b-0", "team-b");
        ResourceClaim claimB = node.allocatedShare(b, "b-0-gpu", "team-b");
        assertThat(DraNode.device(claimB)).isNotEqualTo(gpuOfA);
        node.dra.prepare(b, List.of("b-0-gpu"));

        // a scheduler that ignores taints (or a hand-written allocation) lands team-c on team-a's GPU: refused
        Pod c = node.createPod("team-c", "c-0", "team-c");
        node.createClaimFromExample("resourceclaimtemplate-share.yaml", "team-c", "c-0-gpu", "team-c");
        node.allocator.allocateExactly(
                "team-c",
                "c-0-gpu",
                c,
                List.of(new DeviceRequestAllocationResultBuilder()
                        .withDriver(DRIVER)
                        .withPool(NODE)
                        .withDevice(gpuOfA)
                        .withRequest("gpu")
                        .withShareID("c0")
                        .withConsumedCapacity(Map.of("milli", new Quantity("250"), "memory", new Quantity("20Gi")))
                        .build()));
        assertThatThrownBy(() -> node.dra.prepare(c, List.of("c-0-gpu")))
                .isInstanceOf(DraKubeletSimulator.ClaimFailedException.class)
                .hasMessageContaining("team-c/c-0-gpu")
                .hasMessageContaining("team-a");
        assertThat(node.cdiSpecs())
                .as("only team-a's and team-b's claims have specs")
                .hasSize(2);
        // the agent sends events from its own thread: the refusal answers first
        org.awaitility.Awaitility.await()
                .atMost(Duration.ofSeconds(10))
                .untilAsserted(() -> assertThat(node.kube
                                .v1()
                                .events()
                                .inNamespace("team-c")
                                .list()
                                .getItems())
                        .anySatisfy(event -> {
                            assertThat(event.getReason()).isEqualTo("GpuClaimRefused");
                            assertThat(event.getInvolvedObject().getName()).isEqualTo("c-0");
                        }));
    }

    @Test
    void theDevicePluginAndDraNeverHandOutTheSameGpu() {
        KubeletSimulator kubelet = node.kubelet;
        Pod dpPod = node.createDevicePluginPod("team-a", "dp-0", "team-a", 250);
        KubeletSimulator.Admission admission =
                kubelet.admit("team-a", dpPod.getMetadata().getName(), "main", MILLI_GPU, 250);
        String dpUuid = admission.response().getEnvsMap().get("NVIDIA_VISIBLE_DEVICES");
        String dpDevice = "gpu-" + indexOf(dpUuid);
        node.awaitSlice(s -> hasTaint(s, dpDevice, "omai.io/device-plugin", null), SLICE_WAIT);

        // DRA's scheduler sees the device-plugin GPU tainted and takes the other one
        Pod draPod = node.createPod("team-a", "dra-0", "team-a");
        ResourceClaim claim = node.allocatedShare(draPod, "dra-0-gpu", "team-a");
        String draDevice = DraNode.device(claim);
        assertThat(draDevice).isNotEqualTo(dpDevice);
        node.dra.prepare(draPod, List.of("dra-0-gpu"));
        String draUuid = SimNode.uuidOf(indexOfDevice(draDevice));
        kubelet.awaitDevices(
                MILLI_GPU,
                devices -> devices.stream()
                        .filter(d -> d.getID().startsWith(draUuid + "-m"))
                        .allMatch(d -> d.getHealth().equals("Unhealthy")),
                SLICE_WAIT);

        // the device plugin's next share stays on its own GPU; it cannot take any of the DRA GPU's capacity
        Pod dpPod2 = node.createDevicePluginPod("team-a", "dp-1", "team-a", 250);
        KubeletSimulator.Admission second =
                kubelet.admit("team-a", dpPod2.getMetadata().getName(), "main", MILLI_GPU, 250);
        assertThat(second.response().getEnvsMap()).containsEntry("NVIDIA_VISIBLE_DEVICES", dpUuid);

        // and a claim forced onto the device-plugin GPU is refused, leaving nothing behind
        Pod forced = node.createPod("team-a", "dra-1", "team-a");
        node.createClaimFromExample("resourceclaimtemplate-share.yaml", "team-a", "dra-1-gpu", "team-a");
        node.allocator.allocateExactly(
                "team-a",
                "dra-1-gpu",
                forced,
                List.of(new DeviceRequestAllocationResultBuilder()
                        .withDriver(DRIVER)
                        .withPool(NODE)
                        .withDevice(dpDevice)
                        .withRequest("gpu")
                        .withShareID("forced")
                        .withConsumedCapacity(Map.of("milli", new Quantity("250"), "memory", new Quantity("1Gi")))
                        .build()));
        assertThatThrownBy(() -> node.dra.prepare(forced, List.of("dra-1-gpu")))
                .isInstanceOf(DraKubeletSimulator.ClaimFailedException.class)
                .hasMessageContaining("team-a/dra-1-gpu");
        assertThat(node.cdiSpecs()).hasSize(1);
    }

    @Test
    void badClaimsGetPerClaimErrorsNextToAGoodOneAndLeaveNothingBehind() {
        Pod pod = node.createPod("team-a", "p-0", "team-a");
        ResourceClaim good = node.allocatedShare(pod, "good", "team-a");
        ResourceClaim unknownDevice = explicit(pod, "unknown-device", DRIVER, "gpu-7", "250", "1Gi");
        ResourceClaim overCapacity = explicit(pod, "over-capacity", DRIVER, "gpu-0", "250", "100Gi");
        ResourceClaim otherDriver = explicit(pod, "other-driver", "nic.example.com", "nic-0", null, null);
        ResourceClaim renamed = explicit(pod, "stale-uid", DRIVER, "gpu-0", "250", "1Gi");
        ResourceClaim unallocated =
                node.createClaimFromExample("resourceclaimtemplate-share.yaml", "team-a", "unallocated", "team-a");

        Map<String, ClaimResult> results = node.dra.prepareRaw(
                DRIVER,
                List.of(
                        DraKubeletSimulator.ref(good),
                        DraKubeletSimulator.ref(unknownDevice),
                        DraKubeletSimulator.ref(overCapacity),
                        DraKubeletSimulator.ref(otherDriver),
                        new ClaimRef("team-a", "not-" + renamed.getMetadata().getUid(), "stale-uid"),
                        DraKubeletSimulator.ref(unallocated),
                        new ClaimRef("team-a", "no-such-uid", "no-such-claim")));
        assertThat(results.get(good.getMetadata().getUid()).ok()).isTrue();
        assertThat(results.get(unknownDevice.getMetadata().getUid()).error()).contains("gpu-7", "no such device");
        assertThat(results.get(overCapacity.getMetadata().getUid()).error()).contains("memory", "outside", "capacity");
        assertThat(results.get("not-" + renamed.getMetadata().getUid()).error()).contains("uid");
        assertThat(results.get(unallocated.getMetadata().getUid()).error()).contains("not allocated");
        assertThat(results.get("no-such-uid").error()).contains("does not exist");
        // kubelet sends a driver only claims with results of its own: another driver's claim here is a mismatch
        ClaimResult foreign = results.get(otherDriver.getMetadata().getUid());
        assertThat(foreign.error()).contains("team-a/other-driver", DRIVER, "nic.example.com");
        assertThat(foreign.devices()).isEmpty();
        assertThat(node.cdiSpecs())
                .as("only the good claim has a CDI spec")
                .singleElement()
                .satisfies(spec -> assertThat(spec.getFileName().toString())
                        .contains(good.getMetadata().getUid()));
        ResourceSlice slice = node.awaitSlice(s -> true, SLICE_WAIT);
        long occupied = slice.getSpec().getDevices().stream()
                .filter(d -> d.getTaints() != null && !d.getTaints().isEmpty())
                .count();
        assertThat(occupied).as("only the good claim's GPU is occupied").isEqualTo(1);

        // an older kubelet (v1beta1 only) registers the same driver through v1beta1 and gets the same answer
        try (DraKubeletSimulator older = DraKubeletSimulator.start(
                node.node.paths().pluginsRegistry(), node.kube, List.of(DraPluginClient.V1BETA1))) {
            assertThat(older.awaitPlugin(DRIVER, Duration.ofSeconds(10)).service())
                    .isEqualTo(DraPluginClient.V1BETA1);
            ClaimResult viaBeta = older.prepareRaw(DRIVER, List.of(DraKubeletSimulator.ref(good)))
                    .get(good.getMetadata().getUid());
            assertThat(viaBeta.cdiDeviceIds())
                    .isEqualTo(results.get(good.getMetadata().getUid()).cdiDeviceIds());
        }
    }

    @Test
    void aPreparedClaimSurvivesSigkillOfTheAgentAndUnpreparesAfterTheRestart() throws Exception {
        Pod a = node.createPod("team-a", "a-0", "team-a");
        ResourceClaim claim = node.allocatedShare(a, "a-0-gpu", "team-a");
        ClaimResult prepared = node.dra.prepare(a, List.of("a-0-gpu")).get("a-0-gpu");
        String allocationId = allocationIdOf(node.edits(prepared));
        Path spec = node.cdiSpecs().getFirst();
        byte[] specBefore = Files.readAllBytes(spec);

        node.restartAgentAfterSigkill();

        // still prepared: same spec, same allocation, and the GPU is still team-a's
        assertThat(node.cdiSpecs()).containsExactly(spec);
        assertThat(Files.readAllBytes(spec)).isEqualTo(specBefore);
        ClaimResult again = node.dra.prepare(a, List.of("a-0-gpu")).get("a-0-gpu");
        assertThat(again.cdiDeviceIds()).isEqualTo(prepared.cdiDeviceIds());
        assertThat(allocationIdOf(node.edits(again))).isEqualTo(allocationId);
        assertThat(Files.isDirectory(allocationDir(allocationId))).isTrue();
        node.awaitSlice(s -> hasTaint(s, DraNode.device(claim), "omai.io/tenant", "team-a"), SLICE_WAIT);

        Pod c = node.createPod("team-c", "c-0", "team-c");
        node.createClaimFromExample("resourceclaimtemplate-share.yaml", "team-c", "c-0-gpu", "team-c");
        node.allocator.allocateExactly(
                "team-c",
                "c-0-gpu",
                c,
                List.of(new DeviceRequestAllocationResultBuilder()
                        .withDriver(DRIVER)
                        .withPool(NODE)
                        .withDevice(DraNode.device(claim))
                        .withRequest("gpu")
                        .withShareID("c0")
                        .withConsumedCapacity(Map.of("milli", new Quantity("250"), "memory", new Quantity("1Gi")))
                        .build()));
        assertThatThrownBy(() -> node.dra.prepare(c, List.of("c-0-gpu")))
                .as("the restored ledger still keeps tenants apart")
                .isInstanceOf(DraKubeletSimulator.ClaimFailedException.class);

        node.dra.unprepare(a, List.of("a-0-gpu"));
        assertThat(node.cdiSpecs()).isEmpty();
    }

    /** Every first group of {@code regex} in the component's DeviceClasses and example claims. */
    private static java.util.Set<String> manifestNames(String regex) throws java.io.IOException {
        java.util.Set<String> names = new java.util.TreeSet<>();
        java.util.regex.Pattern pattern = java.util.regex.Pattern.compile(regex);
        for (String dir : List.of("deviceclasses", "examples")) {
            try (var files = Files.list(DraNode.COMPONENT.resolve(dir))) {
                for (Path file : files.toList()) {
                    var matcher = pattern.matcher(Files.readString(file));
                    while (matcher.find()) {
                        names.add(matcher.group(1));
                    }
                }
            }
        }
        return names;
    }

    private ResourceClaim explicit(Pod pod, String name, String driver, String device, String milli, String memory) {
        node.createClaimFromExample("resourceclaimtemplate-share.yaml", "team-a", name, "team-a");
        DeviceRequestAllocationResultBuilder result = new DeviceRequestAllocationResultBuilder()
                .withDriver(driver)
                .withPool(NODE)
                .withDevice(device)
                .withRequest("gpu");
        if (milli != null) {
            result.withShareID(name)
                    .withConsumedCapacity(Map.of("milli", new Quantity(milli), "memory", new Quantity(memory)));
        }
        return node.allocator.allocateExactly("team-a", name, pod, List.of(result.build()));
    }

    private static int indexOf(String uuid) {
        for (int i = 0; i < 8; i++) {
            if (SimNode.uuidOf(i).equals(uuid)) {
                return i;
            }
        }
        throw new AssertionError("no simulated GPU has uuid " + uuid);
    }

    private static int indexOfDevice(String device) {
        return Integer.parseInt(device.substring("gpu-".length()));
    }
}
