package io.omai.ibvf.alloc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.alloc.VfPreference.Affinity;
import io.omai.ibvf.alloc.VfPreference.RankedVf;
import io.omai.ibvf.error.SysfsFormatException;
import io.omai.ibvf.error.VfNotReadyException;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VfAllocationTest {

    @TempDir
    Path root;

    private FakeSysfs tree;
    private FakeKernel kernel;
    private FakePf ib;
    private FakePf eth;
    private VfDeviceNodeResolver resolver;

    @BeforeEach
    void node() {
        tree = FakeSysfs.create(root);
        ib = tree.connectX6Ib(0, 16);
        eth = tree.connectX6Eth(1, 8);
        kernel = new FakeKernel(tree);
        kernel.write("bus/pci/devices/" + ib.address() + "/sriov_numvfs", "8");
        kernel.write("bus/pci/devices/" + eth.address() + "/sriov_numvfs", "2");
        resolver = new VfDeviceNodeResolver(kernel);
    }

    @Test
    void resolve_givesTheVfsOwnUverbsUmadIssmAndRdmaCm_plusEnv() {
        PciAddress vf = ib.vfAddress(0);
        String uverbs =
                tree.files().list("bus/pci/devices/" + vf + "/infiniband_verbs").getFirst();
        String rdma = tree.files().list("bus/pci/devices/" + vf + "/infiniband").getFirst();

        VfAllocation allocation = resolver.resolve(vf);

        String madIndex = tree.files()
                .list("bus/pci/devices/" + vf + "/infiniband_mad")
                .getFirst()
                .substring(4);
        assertThat(allocation.deviceNodes())
                .extracting(DeviceNode::hostPath)
                .containsExactly(
                        "/dev/infiniband/" + uverbs,
                        "/dev/infiniband/umad" + madIndex,
                        "/dev/infiniband/issm" + madIndex,
                        "/dev/infiniband/rdma_cm");
        assertThat(allocation.deviceNodes()).allSatisfy(node -> {
            assertThat(node.containerPath()).isEqualTo(node.hostPath());
            assertThat(node.permissions()).isEqualTo("rw");
        });
        assertThat(allocation.env())
                .containsEntry(VfAllocation.ENV_PCI_ADDRESS, "0000:3b:00.1")
                .containsEntry(VfAllocation.ENV_RDMA_DEVICE, rdma)
                .containsEntry(VfAllocation.ENV_UVERBS, uverbs)
                .containsEntry(VfAllocation.ENV_NODE_GUID, "00:00:00:00:00:00:00:00")
                .containsKey(VfAllocation.ENV_PORT_GUID);
    }

    @Test
    void resolve_followsUverbsRenumberingAfterARebind() {
        PciAddress vf1 = ib.vfAddress(1);
        PciAddress vf2 = ib.vfAddress(2);
        String before1 = resolver.resolve(vf1).env().get(VfAllocation.ENV_UVERBS);
        String before2 = resolver.resolve(vf2).env().get(VfAllocation.ENV_UVERBS);

        // both unbound, then bound in the other order: the kernel's lowest-free allocator swaps their numbers
        kernel.write("bus/pci/drivers/mlx5_core/unbind", vf1.value());
        kernel.write("bus/pci/drivers/mlx5_core/unbind", vf2.value());
        kernel.write("bus/pci/drivers/mlx5_core/bind", vf2.value());
        kernel.write("bus/pci/drivers/mlx5_core/bind", vf1.value());

        VfAllocation after1 = resolver.resolve(vf1);
        assertThat(after1.env().get(VfAllocation.ENV_UVERBS)).isEqualTo(before2);
        assertThat(after1.deviceNodes().getFirst().hostPath()).isEqualTo("/dev/infiniband/" + before2);
        assertThat(resolver.resolve(vf2).env().get(VfAllocation.ENV_UVERBS)).isEqualTo(before1);
    }

    @Test
    void resolve_neverInfersUverbsFromTheRdmaDeviceNumber() {
        FakeSysfs shifted = FakeSysfs.create(root.resolve("shifted"));
        shifted.softRoce();
        FakePf pf = shifted.connectX6Ib(0, 4);
        FakeKernel shiftedKernel = new FakeKernel(shifted);
        shiftedKernel.write("bus/pci/devices/" + pf.address() + "/sriov_numvfs", "2");

        VfAllocation allocation = new VfDeviceNodeResolver(shiftedKernel).resolve(pf.vfAddress(1));

        assertThat(allocation.rdmaDevice()).isEqualTo("mlx5_2");
        assertThat(allocation.env()).containsEntry(VfAllocation.ENV_UVERBS, "uverbs3");
        assertThat(allocation.deviceNodes())
                .extracting(DeviceNode::hostPath)
                .startsWith("/dev/infiniband/uverbs3", "/dev/infiniband/umad3", "/dev/infiniband/issm3");
    }

    @Test
    void resolve_withoutRdmaUcmLoaded_omitsRdmaCmAndSaysSo() {
        tree.delete("class/misc/rdma_cm");

        VfAllocation allocation = resolver.resolve(ib.vfAddress(4));

        assertThat(allocation.rdmaCmAvailable()).isFalse();
        assertThat(allocation.deviceNodes())
                .extracting(DeviceNode::hostPath)
                .noneMatch(path -> path.endsWith("rdma_cm"));
    }

    @Test
    void resolve_unboundVf_isNotReady() {
        kernel.write("bus/pci/drivers/mlx5_core/unbind", ib.vfAddress(5).value());

        assertThatThrownBy(() -> resolver.resolve(ib.vfAddress(5)))
                .isInstanceOf(VfNotReadyException.class)
                .hasMessageContaining("bus/pci/devices/0000:3b:00.6/infiniband");
    }

    @Test
    void resolve_uverbsOfAnotherDevice_isAFormatError() {
        PciAddress vf = ib.vfAddress(6);
        String uverbs =
                tree.files().list("bus/pci/devices/" + vf + "/infiniband_verbs").getFirst();
        tree.writeFile(ib.parentDirectory() + "/" + vf + "/infiniband_verbs/" + uverbs + "/ibdev", "mlx5_99");

        assertThatThrownBy(() -> resolver.resolve(vf))
                .isInstanceOf(SysfsFormatException.class)
                .hasMessageContaining("'mlx5_99'")
                .hasMessageContaining("ibdev");
    }

    @Test
    void preference_ordersSamePcieSwitchFirst_thenSameNuma_thenTheRest() {
        PciAddress gpuUnderIbSwitch = tree.gpuBeside(ib);
        PciAddress farGpuOnNuma1 = tree.gpuOnOwnHostBridge(1);
        VfPreference preference = new VfPreference(new PciTopology(kernel));
        List<PciAddress> candidates = List.of(eth.vfAddress(0), ib.vfAddress(7), eth.vfAddress(1), ib.vfAddress(0));

        List<RankedVf> nearIbGpu = preference.order(candidates, List.of(GpuPlacement.at(gpuUnderIbSwitch)));
        assertThat(nearIbGpu)
                .extracting(RankedVf::vf, RankedVf::affinity)
                .containsExactly(
                        org.assertj.core.groups.Tuple.tuple(ib.vfAddress(0), Affinity.SAME_PCIE_SWITCH),
                        org.assertj.core.groups.Tuple.tuple(ib.vfAddress(7), Affinity.SAME_PCIE_SWITCH),
                        org.assertj.core.groups.Tuple.tuple(eth.vfAddress(0), Affinity.NONE),
                        org.assertj.core.groups.Tuple.tuple(eth.vfAddress(1), Affinity.NONE));

        List<RankedVf> nearNuma1 = preference.order(candidates, List.of(GpuPlacement.at(farGpuOnNuma1)));
        assertThat(nearNuma1)
                .extracting(RankedVf::vf, RankedVf::affinity)
                .containsExactly(
                        org.assertj.core.groups.Tuple.tuple(eth.vfAddress(0), Affinity.SAME_NUMA_NODE),
                        org.assertj.core.groups.Tuple.tuple(eth.vfAddress(1), Affinity.SAME_NUMA_NODE),
                        org.assertj.core.groups.Tuple.tuple(ib.vfAddress(0), Affinity.NONE),
                        org.assertj.core.groups.Tuple.tuple(ib.vfAddress(7), Affinity.NONE));
    }

    @Test
    void preference_unknownNuma_neverCountsAsAMatch() {
        PciAddress gpu = tree.gpuOnOwnHostBridge(0);
        tree.writeFile(ib.parentDirectory() + "/" + ib.vfAddress(0) + "/numa_node", "-1");
        VfPreference preference = new VfPreference(new PciTopology(kernel));

        List<RankedVf> ranked = preference.order(
                List.of(ib.vfAddress(0), ib.vfAddress(1)), List.of(new GpuPlacement(gpu, OptionalInt.empty())));

        assertThat(ranked)
                .extracting(RankedVf::vf, RankedVf::affinity)
                .containsExactly(
                        org.assertj.core.groups.Tuple.tuple(ib.vfAddress(1), Affinity.SAME_NUMA_NODE),
                        org.assertj.core.groups.Tuple.tuple(ib.vfAddress(0), Affinity.NONE));
    }

    @Test
    void preference_gpuKnownOnlyByNumaNode_ranksByNumaAlone() {
        VfPreference preference = new VfPreference(new PciTopology(kernel));
        List<PciAddress> candidates = List.of(ib.vfAddress(0), eth.vfAddress(0));

        List<RankedVf> ranked = preference.order(candidates, List.of(GpuPlacement.onNumaNode(1)));

        assertThat(ranked)
                .extracting(RankedVf::vf, RankedVf::affinity)
                .containsExactly(
                        org.assertj.core.groups.Tuple.tuple(eth.vfAddress(0), Affinity.SAME_NUMA_NODE),
                        org.assertj.core.groups.Tuple.tuple(ib.vfAddress(0), Affinity.NONE));
        assertThatThrownBy(() -> new GpuPlacement(java.util.Optional.empty(), OptionalInt.empty()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("neither");
    }
}
