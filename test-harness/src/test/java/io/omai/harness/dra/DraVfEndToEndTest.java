package io.omai.harness.dra;

import static io.omai.harness.dra.DraNode.NODE;
import static io.omai.harness.dra.DraNode.VF_POOL;
import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.resource.v1.Device;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResult;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceSlice;
import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.IbVfManagerConfig;
import io.omai.ibvf.config.NodeRebindLock;
import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.guid.FileGuidStore;
import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import io.omai.simulator.dra.CdiRegistry;
import io.omai.simulator.dra.DraPluginClient.ClaimResult;
import io.omai.simulator.launcher.ContainerEdits;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The component's "4 GPUs + a VF on one NUMA node" example end to end: the agent JVM (4 simulated GPUs, all on
 * NUMA 0) reads a fake sysfs with an InfiniBand HCA on NUMA 0 (2 VFs) and publishes them as a pool of their own;
 * kube-scheduler's allocator satisfies the example's {@code matchAttribute: gpu.omai.io/numaNode} across both
 * pools through the {@code omai-gpu} and {@code omai-ib-vf} DeviceClasses, and kubelet prepares one CDI spec with
 * the GPUs' shim files and the VF's RDMA device nodes.
 */
class DraVfEndToEndTest {
    private static final String GUID_RANGE = "02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff";
    private static final Duration SLICE_WAIT = Duration.ofSeconds(15);

    @TempDir
    Path root;

    private DraNode node;
    private FakePf ib;

    @BeforeEach
    void start() throws Exception {
        FakeSysfs tree = FakeSysfs.create(root.resolve("sys"));
        ib = tree.connectX6Ib(0, 8);
        FakeKernel kernel = new FakeKernel(tree);
        node = new DraNode(root.resolve("node"), 4, """
                ib:
                  enabled: true
                  sysfsRoot: %s
                  guidRange: %s
                  desiredVfs: {"%s": 2}
                  pollInterval: 200ms
                  rebindLock: %s
                """.formatted(
                        root.resolve("sys"), GUID_RANGE, ib.address(), root.resolve("rebind.lock")));
        Path state = node.node.paths().state();
        Files.createDirectories(state);
        // VFs as the node's provisioning left them: counts and GUIDs already right, so the agent changes nothing
        new IbVfManager(
                        new IbVfManagerConfig(
                                NODE,
                                GuidRange.parse(GUID_RANGE),
                                VfLinkState.AUTO,
                                new ReadinessPolicy(3, Duration.ZERO)),
                        kernel,
                        kernel,
                        new FileGuidStore(state.resolve("ib-vf-guids")),
                        new NodeRebindLock(root.resolve("rebind.lock")),
                        duration -> {})
                .reconcile(ib.address(), 2);
        node.startAgent();
    }

    @AfterEach
    void stop() {
        node.close();
    }

    @Test
    void theFourGpusAndAVfExampleIsAllocatedOnOneNumaNodeAndPreparedWithTheVfsDeviceNodes() throws Exception {
        ResourceSlice vfs =
                node.awaitSlice(VF_POOL, s -> s.getSpec().getDevices().size() == 2, SLICE_WAIT);
        String vf0 = ib.vfAddress(0).value();
        assertThat(vfs.getSpec().getDevices())
                .extracting(Device::getName)
                .containsExactly(
                        "vf-" + vf0.replace(':', '-').replace('.', '-'),
                        "vf-" + ib.vfAddress(1).value().replace(':', '-').replace('.', '-'));
        Device published = vfs.getSpec().getDevices().getFirst();
        assertThat(published.getAttributes().get("pciAddress").getString()).isEqualTo(vf0);
        assertThat(published.getAttributes().get("numaNode").getInt()).isZero();
        assertThat(published.getAttributes().get("linkType").getString()).isEqualTo("infiniband");
        assertThat(published
                        .getAttributes()
                        .get("resource.kubernetes.io/pcieRoot")
                        .getString())
                .matches("pci0000:[0-9a-f]{2}");

        Pod pod = node.createPod("team-a", "train-0", "team-a");
        node.createClaimFromExample("resourceclaimtemplate-4gpu-vf.yaml", "team-a", "train-0-devices", "team-a");
        ResourceClaim claim = node.allocator.allocate("team-a", "train-0-devices", pod);
        List<DeviceRequestAllocationResult> results =
                claim.getStatus().getAllocation().getDevices().getResults();
        assertThat(results)
                .extracting(r -> r.getRequest() + " " + r.getPool())
                .containsExactlyInAnyOrder(
                        "gpus " + NODE, "gpus " + NODE, "gpus " + NODE, "gpus " + NODE, "vf " + VF_POOL);
        String vfDevice = results.stream()
                .filter(r -> r.getRequest().equals("vf"))
                .findFirst()
                .orElseThrow()
                .getDevice();

        ClaimResult prepared = node.dra.prepare(pod, List.of("train-0-devices")).get("train-0-devices");
        assertThat(prepared.error()).isEmpty();
        assertThat(prepared.devices())
                .extracting(d -> d.pool() + "/" + d.device())
                .hasSize(5)
                .contains(VF_POOL + "/" + vfDevice);
        ContainerEdits edits = CdiRegistry.scan(node.node.paths().cdiDir()).resolve(prepared.cdiDeviceIdsFor("vf"));
        assertThat(edits.deviceNodes())
                .extracting(ContainerEdits.DeviceNode::containerPath)
                .contains("/dev/infiniband/rdma_cm")
                .anyMatch(path -> path.matches("/dev/infiniband/uverbs\\d+"));
        assertThat(edits.env()).containsKey("PCIDEVICE_OMAI_IO_IB_VF").containsKey("OMAI_ALLOCATION_ID");
        assertThat(edits.env().get("PCIDEVICE_OMAI_IO_IB_VF"))
                .isIn(vf0, ib.vfAddress(1).value());

        node.dra.unprepare(pod, List.of("train-0-devices"));
        assertThat(node.cdiSpecs()).isEmpty();
    }
}
