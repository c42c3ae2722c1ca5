package io.omai.simulator.dra;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResultBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.omai.simulator.dra.DraPluginClient.ClaimRef;
import io.omai.simulator.dra.DraPluginClient.ClaimResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

@EnableKubernetesMockClient(crud = true)
class DraKubeletSimulatorTest {
    private static final Duration WAIT = Duration.ofSeconds(10);

    KubernetesClient kube;

    @TempDir
    Path dir;

    private Path registry() {
        return dir.resolve("plugins_registry");
    }

    private FakeDraPlugin plugin(String socketName, List<String> versions) throws Exception {
        Files.createDirectories(registry());
        Files.createDirectories(dir.resolve("plugins"));
        return new FakeDraPlugin(
                registry().resolve(socketName),
                dir.resolve("plugins/" + socketName.replace("-reg", "")),
                "DRAPlugin",
                versions,
                Duration.ZERO);
    }

    @Test
    void aSocketAlreadyThereRegistersWithThePluginsFirstSupportedServiceAndIsToldSo() throws Exception {
        try (FakeDraPlugin fake = plugin("test.example-reg.sock", List.of("v1beta1.DRAPlugin", "v1.DRAPlugin"));
                DraKubeletSimulator kubelet = DraKubeletSimulator.start(registry(), kube)) {
            DraPluginClient client = kubelet.awaitPlugin("test.example", WAIT);
            assertThat(client.service()).as("the plugin's order decides").isEqualTo("v1beta1.DRAPlugin");
            assertThat(fake.notifications)
                    .singleElement()
                    .satisfies(
                            status -> assertThat(status.getPluginRegistered()).isTrue());

            Map<String, ClaimResult> results =
                    kubelet.prepareRaw("test.example", List.of(new ClaimRef("ns", "uid-1", "c1")));
            assertThat(results.get("uid-1").cdiDeviceIds()).containsExactly("test.example/gpu=uid-1");
            assertThat(fake.calls).containsExactly("v1beta1.prepare");
        }
    }

    @Test
    void aNewSocketIsSeenThroughTheWatchAndV1IsTakenWhenOfferedFirst() throws Exception {
        try (DraKubeletSimulator kubelet = DraKubeletSimulator.start(registry(), kube);
                FakeDraPlugin fake = plugin("test.example-reg.sock", List.of("v1.DRAPlugin", "v1beta1.DRAPlugin"))) {
            assertThat(kubelet.awaitPlugin("test.example", WAIT).service()).isEqualTo("v1.DRAPlugin");
            kubelet.unprepareRaw("test.example", List.of(new ClaimRef("ns", "uid-1", "c1")));
            assertThat(fake.calls).containsExactly("v1.unprepare");
        }
    }

    @Test
    void anOlderKubeletRefusesAPluginOfferingOnlyServicesItDoesNotKnowAndSaysWhy() throws Exception {
        try (FakeDraPlugin fake = plugin("test.example-reg.sock", List.of("v1.DRAPlugin"));
                DraKubeletSimulator kubelet =
                        DraKubeletSimulator.start(registry(), kube, List.of("v1beta1.DRAPlugin"))) {
            awaitNotification(fake);
            assertThat(fake.notifications.getFirst().getPluginRegistered()).isFalse();
            assertThat(fake.notifications.getFirst().getError())
                    .contains("none of the supported gRPC services", "v1.DRAPlugin");
            assertThat(kubelet.plugin("test.example")).isEmpty();
        }
    }

    @Test
    void aPluginOfAnotherTypeIsRefused() throws Exception {
        Files.createDirectories(registry());
        try (FakeDraPlugin fake = new FakeDraPlugin(
                        registry().resolve("csi-reg.sock"),
                        dir.resolve("csi.sock"),
                        "CSIPlugin",
                        List.of("1.0.0"),
                        Duration.ZERO);
                DraKubeletSimulator kubelet = DraKubeletSimulator.start(registry(), kube)) {
            awaitNotification(fake);
            assertThat(fake.notifications.getFirst().getPluginRegistered()).isFalse();
            assertThat(fake.notifications.getFirst().getError()).contains("CSIPlugin");
            assertThat(kubelet.plugin("test.example")).isEmpty();
        }
    }

    @Test
    void getInfoSlowerThanOneSecondFailsTheRegistration() throws Exception {
        Files.createDirectories(registry());
        try (FakeDraPlugin fake = new FakeDraPlugin(
                        registry().resolve("slow-reg.sock"),
                        dir.resolve("slow.sock"),
                        "DRAPlugin",
                        List.of("v1.DRAPlugin"),
                        Duration.ofMillis(1500));
                DraKubeletSimulator kubelet = DraKubeletSimulator.start(registry(), kube)) {
            assertThat(kubelet.events()).first().satisfies(event -> {
                assertThat(event.registered()).isFalse();
                assertThat(event.error()).contains("GetInfo failed", "DEADLINE_EXCEEDED");
            });
            assertThat(fake.notifications).isEmpty();
        }
    }

    @Test
    void aRemovedSocketDeregistersAndARecreatedOneRegistersAgainWhileDotFilesAreIgnored() throws Exception {
        try (DraKubeletSimulator kubelet = DraKubeletSimulator.start(registry(), kube)) {
            try (FakeDraPlugin hidden = plugin(".test.example-reg.sock", List.of("v1.DRAPlugin"))) {
                Thread.sleep(300);
                assertThat(kubelet.plugin("test.example")).isEmpty();
                assertThat(hidden.notifications).isEmpty();
            }
            FakeDraPlugin first = plugin("test.example-reg.sock", List.of("v1.DRAPlugin"));
            kubelet.awaitPlugin("test.example", WAIT);
            first.close(); // the server unlinks its socket, as a stopping plugin does
            kubelet.awaitDeregistered("test.example", WAIT);
            try (FakeDraPlugin second = plugin("test.example-reg.sock", List.of("v1.DRAPlugin"))) {
                kubelet.awaitPlugin("test.example", WAIT);
                assertThat(second.notifications)
                        .singleElement()
                        .satisfies(status ->
                                assertThat(status.getPluginRegistered()).isTrue());
            }
            assertThat(kubelet.events()).filteredOn(e -> e.registered()).hasSize(2);
        }
    }

    @Test
    void prepareChecksTheClaimsAllocationAndReservationAndFailsOnAnErrorOrALeftOutClaim() throws Exception {
        try (FakeDraPlugin fake = plugin("test.example-reg.sock", List.of("v1.DRAPlugin"));
                DraKubeletSimulator kubelet = DraKubeletSimulator.start(registry(), kube)) {
            kubelet.awaitPlugin("test.example", WAIT);
            Pod pod = kube.pods()
                    .inNamespace("ns")
                    .resource(new PodBuilder()
                            .withNewMetadata()
                            .withName("p")
                            .withNamespace("ns")
                            .withUid(UUID.randomUUID().toString())
                            .endMetadata()
                            .build())
                    .create();
            ClaimAllocatorTestSupport.createClaim(kube, "ns", "good");
            ClaimAllocatorTestSupport.createClaim(kube, "ns", "fail-one");
            ClaimAllocatorTestSupport.createClaim(kube, "ns", "skip-one");
            ClaimAllocatorTestSupport.createClaim(kube, "ns", "unallocated");
            ClaimAllocator allocator = new ClaimAllocator(kube, "node-1");
            for (String name : List.of("good", "fail-one", "skip-one")) {
                allocator.allocateExactly(
                        "ns",
                        name,
                        pod,
                        List.of(new DeviceRequestAllocationResultBuilder()
                                .withDriver("test.example")
                                .withPool("node-1")
                                .withDevice("d0")
                                .withRequest("gpu")
                                .build()));
            }

            Map<String, ClaimResult> prepared = kubelet.prepare(pod, List.of("good"));
            ResourceClaim good = kube.resources(ResourceClaim.class)
                    .inNamespace("ns")
                    .withName("good")
                    .get();
            assertThat(prepared.get("good").cdiDeviceIdsFor("gpu"))
                    .containsExactly("test.example/gpu=" + good.getMetadata().getUid());

            assertThatThrownBy(() -> kubelet.prepare(pod, List.of("fail-one")))
                    .hasMessageContaining("NodePrepareResources failed for claim ns/fail-one: cannot prepare fail-one");
            assertThatThrownBy(() -> kubelet.prepare(pod, List.of("skip-one")))
                    .hasMessageContaining("has no entry for claim");
            assertThatThrownBy(() -> kubelet.prepare(pod, List.of("unallocated")))
                    .hasMessageContaining("ns/unallocated is not allocated");
            Pod other = new PodBuilder(pod)
                    .editMetadata()
                    .withName("other")
                    .withUid("another-uid")
                    .endMetadata()
                    .build();
            assertThatThrownBy(() -> kubelet.prepare(other, List.of("good")))
                    .hasMessageContaining("is not in status.reservedFor of ResourceClaim good");
            assertThat(fake.calls)
                    .as("only allocated, reserved claims reach the driver")
                    .hasSize(3);
        }
    }

    private static void awaitNotification(FakeDraPlugin fake) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (fake.notifications.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertThat(fake.notifications).as("NotifyRegistrationStatus").isNotEmpty();
    }

    /** Claims the way a user writes them (spec only), for the tests here. */
    static final class ClaimAllocatorTestSupport {
        private ClaimAllocatorTestSupport() {}

        static ResourceClaim createClaim(KubernetesClient kube, String namespace, String name) {
            return kube.resources(ResourceClaim.class)
                    .inNamespace(namespace)
                    .resource(new ResourceClaimBuilder()
                            .withNewMetadata()
                            .withName(name)
                            .withNamespace(namespace)
                            .endMetadata()
                            .withNewSpec()
                            .withNewDevices()
                            .addNewRequest()
                            .withName("gpu")
                            .withNewExactly()
                            .withDeviceClassName("test")
                            .endExactly()
                            .endRequest()
                            .endDevices()
                            .endSpec()
                            .build())
                    .create();
        }
    }
}
