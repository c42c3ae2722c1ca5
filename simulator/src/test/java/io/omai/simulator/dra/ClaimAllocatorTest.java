package io.omai.simulator.dra;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceAttributeBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceCapacityBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceClassBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceConstraintBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResult;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceTaintBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceTolerationBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceSliceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The allocator against slices shaped like the agent's: shared GPUs with milli and memory, VFs per NUMA node. */
@EnableKubernetesMockClient(crud = true)
class ClaimAllocatorTest {
    private static final String DRIVER = "gpu.omai.io";
    private static final String NODE = "node-1";

    KubernetesClient kube;
    private ClaimAllocator allocator;
    private Pod pod;

    @BeforeEach
    void slicesAndClasses() {
        allocator = new ClaimAllocator(kube, NODE);
        pod = kube.pods()
                .inNamespace("ns")
                .resource(new PodBuilder()
                        .withNewMetadata()
                        .withName("p")
                        .withNamespace("ns")
                        .withUid(UUID.randomUUID().toString())
                        .endMetadata()
                        .build())
                .create();
        List<io.fabric8.kubernetes.api.model.resource.v1.Device> gpus = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            gpus.add(new DeviceBuilder()
                    .withName("gpu-" + i)
                    .withAllowMultipleAllocations(true)
                    .withAttributes(Map.of(
                            "type",
                                    new DeviceAttributeBuilder()
                                            .withString("gpu")
                                            .build(),
                            "numaNode",
                                    new DeviceAttributeBuilder().withInt(i / 2L).build()))
                    .withCapacity(Map.of(
                            "milli",
                                    new DeviceCapacityBuilder()
                                            .withValue(new Quantity("1000"))
                                            .build(),
                            "memory",
                                    new DeviceCapacityBuilder()
                                            .withValue(new Quantity("80Gi"))
                                            .withNewRequestPolicy()
                                            .withNewValidRange()
                                            .withMin(new Quantity("256Mi"))
                                            .withStep(new Quantity("1Mi"))
                                            .endValidRange()
                                            .endRequestPolicy()
                                            .build()))
                    .build());
        }
        slice("gpus", gpus);
        slice("ib", List.of(vf("vf-0", 0), vf("vf-1", 1)));
        deviceClass(
                "omai-gpu-share",
                "device.driver == \"gpu.omai.io\" && device.attributes[\"gpu.omai.io\"].type == \"gpu\"");
        deviceClass(
                "omai-ib-vf",
                "device.driver == \"gpu.omai.io\" && device.attributes[\"gpu.omai.io\"].type == \"ib-vf\"");
    }

    private static io.fabric8.kubernetes.api.model.resource.v1.Device vf(String name, long numa) {
        return new DeviceBuilder()
                .withName(name)
                .withAttributes(Map.of(
                        "type",
                        new DeviceAttributeBuilder().withString("ib-vf").build(),
                        DRIVER + "/numaNode",
                        new DeviceAttributeBuilder().withInt(numa).build()))
                .build();
    }

    private void slice(String pool, List<io.fabric8.kubernetes.api.model.resource.v1.Device> devices) {
        kube.resources(io.fabric8.kubernetes.api.model.resource.v1.ResourceSlice.class)
                .resource(new ResourceSliceBuilder()
                        .withNewMetadata()
                        .withName(NODE + "-" + pool)
                        .endMetadata()
                        .withNewSpec()
                        .withDriver(DRIVER)
                        .withNodeName(NODE)
                        .withNewPool()
                        .withName(NODE + "-" + pool)
                        .withGeneration(1L)
                        .withResourceSliceCount(1L)
                        .endPool()
                        .withDevices(devices)
                        .endSpec()
                        .build())
                .create();
    }

    private void deviceClass(String name, String cel) {
        kube.resources(io.fabric8.kubernetes.api.model.resource.v1.DeviceClass.class)
                .resource(new DeviceClassBuilder()
                        .withNewMetadata()
                        .withName(name)
                        .endMetadata()
                        .withNewSpec()
                        .addNewSelector()
                        .withNewCel()
                        .withExpression(cel)
                        .endCel()
                        .endSelector()
                        .endSpec()
                        .build())
                .create();
    }

    private ResourceClaim claim(String name, DeviceRequestBuilder... requests) {
        ResourceClaimBuilder claim = new ResourceClaimBuilder()
                .withNewMetadata()
                .withName(name)
                .withNamespace("ns")
                .endMetadata()
                .withNewSpec()
                .withNewDevices()
                .endDevices()
                .endSpec();
        for (DeviceRequestBuilder request : requests) {
            claim.editSpec()
                    .editDevices()
                    .addToRequests(request.build())
                    .endDevices()
                    .endSpec();
        }
        return claim.build();
    }

    private ResourceClaim create(ResourceClaim claim) {
        return kube.resources(ResourceClaim.class)
                .inNamespace("ns")
                .resource(claim)
                .create();
    }

    private static DeviceRequestBuilder share(String name, String milli, String memory) {
        return new DeviceRequestBuilder()
                .withName(name)
                .withNewExactly()
                .withDeviceClassName("omai-gpu-share")
                .withNewCapacity()
                .withRequests(Map.of("milli", new Quantity(milli), "memory", new Quantity(memory)))
                .endCapacity()
                .endExactly();
    }

    private static List<DeviceRequestAllocationResult> results(ResourceClaim claim) {
        return claim.getStatus().getAllocation().getDevices().getResults();
    }

    @Test
    void sharesConsumeCapacityRoundedToThePolicyAndFillOneGpuBeforeTheNext() {
        List<String> devices = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            create(claim("share-" + i, share("gpu", "250", "20000000000")));
            ResourceClaim allocated = allocator.allocate("ns", "share-" + i, pod);
            DeviceRequestAllocationResult result = results(allocated).getFirst();
            assertThat(result.getDriver()).isEqualTo(DRIVER);
            assertThat(result.getShareID()).isNotBlank();
            assertThat(Quantity.getAmountInBytes(result.getConsumedCapacity().get("memory"))
                            .longValueExact())
                    .as("20 GB rounded up to whole MiB above the 256 MiB minimum")
                    .isEqualTo(19074L << 20);
            assertThat(result.getConsumedCapacity().get("milli")).isEqualTo(new Quantity("250"));
            assertThat(allocated.getStatus().getReservedFor())
                    .singleElement()
                    .satisfies(ref ->
                            assertThat(ref.getUid()).isEqualTo(pod.getMetadata().getUid()));
            assertThat(allocated.getStatus().getAllocation().getNodeSelector().getNodeSelectorTerms())
                    .singleElement()
                    .satisfies(
                            term -> assertThat(term.getMatchFields().getFirst().getValues())
                                    .containsExactly(NODE));
            devices.add(result.getDevice());
        }
        assertThat(devices).containsExactly("gpu-0", "gpu-0", "gpu-0", "gpu-0", "gpu-1");
    }

    @Test
    void aDeviceTaintedForAnotherTenantIsSkippedUnlessTolerated() {
        kube.resources(io.fabric8.kubernetes.api.model.resource.v1.ResourceSlice.class)
                .withName(NODE + "-gpus")
                .edit(slice -> {
                    slice.getSpec().getPool().setGeneration(2L);
                    slice.getSpec()
                            .getDevices()
                            .getFirst()
                            .setTaints(List.of(new DeviceTaintBuilder()
                                    .withKey("omai.io/tenant")
                                    .withValue("team-a")
                                    .withEffect("NoSchedule")
                                    .build()));
                    return slice;
                });
        create(claim("b", share("gpu", "250", "1Gi")));
        assertThat(results(allocator.allocate("ns", "b", pod)).getFirst().getDevice())
                .isEqualTo("gpu-1");

        DeviceRequestBuilder tolerating = share("gpu", "250", "1Gi");
        tolerating
                .editExactly()
                .withTolerations(new DeviceTolerationBuilder()
                        .withKey("omai.io/tenant")
                        .withOperator("Equal")
                        .withValue("team-a")
                        .withEffect("NoSchedule")
                        .build())
                .endExactly();
        create(claim("a", tolerating));
        DeviceRequestAllocationResult result =
                results(allocator.allocate("ns", "a", pod)).getFirst();
        assertThat(result.getDevice()).isEqualTo("gpu-0");
        assertThat(result.getTolerations()).hasSize(1);
    }

    @Test
    void fourGpusAndAVfOnOneNumaNodeFollowMatchAttribute() {
        // gpu-0 and gpu-1 are on NUMA 0, gpu-2 and gpu-3 on NUMA 1; two GPUs and a VF must share one node
        DeviceRequestBuilder gpus = share("gpus", "1000", "80Gi");
        gpus.editExactly().withCount(2L).endExactly();
        DeviceRequestBuilder vf = new DeviceRequestBuilder()
                .withName("vf")
                .withNewExactly()
                .withDeviceClassName("omai-ib-vf")
                .endExactly();
        ResourceClaim claim = claim("train", gpus, vf);
        claim.getSpec()
                .getDevices()
                .setConstraints(List.of(new DeviceConstraintBuilder()
                        .withRequests("gpus", "vf")
                        .withMatchAttribute(DRIVER + "/numaNode")
                        .build()));
        create(claim);
        create(claim("first", share("gpu", "1", "256Mi"))); // takes a sliver of gpu-0: it still fits a share only
        allocator.allocate("ns", "first", pod);

        List<DeviceRequestAllocationResult> results = results(allocator.allocate("ns", "train", pod));
        assertThat(results)
                .extracting(DeviceRequestAllocationResult::getDevice)
                .containsExactly("gpu-2", "gpu-3", "vf-1");
    }

    @Test
    void unsatisfiableClaimsFailNamingWhyAndWriteNothing() {
        create(claim("huge", share("gpu", "250", "81Gi")));
        assertThatThrownBy(() -> allocator.allocate("ns", "huge", pod))
                .isInstanceOf(ClaimAllocator.UnsatisfiableClaimException.class)
                .hasMessageContaining("gpu-0 has 85899345920 memory left, 86973087744 asked");
        assertThat(kube.resources(ResourceClaim.class)
                        .inNamespace("ns")
                        .withName("huge")
                        .get()
                        .getStatus())
                .satisfiesAnyOf(
                        status -> assertThat(status).isNull(),
                        status -> assertThat(status.getAllocation()).isNull());

        DeviceRequestBuilder unknownCapacity = new DeviceRequestBuilder()
                .withName("gpu")
                .withNewExactly()
                .withDeviceClassName("omai-gpu-share")
                .withNewCapacity()
                .withRequests(Map.of("watts", new Quantity("100")))
                .endCapacity()
                .endExactly();
        create(claim("watts", unknownCapacity));
        assertThatThrownBy(() -> allocator.allocate("ns", "watts", pod))
                .hasMessageContaining("has no capacity 'watts'");

        DeviceRequestBuilder noClass = new DeviceRequestBuilder()
                .withName("gpu")
                .withNewExactly()
                .withDeviceClassName("absent")
                .endExactly();
        create(claim("noclass", noClass));
        assertThatThrownBy(() -> allocator.allocate("ns", "noclass", pod))
                .hasMessageContaining("DeviceClass 'absent' does not exist");
    }
}
