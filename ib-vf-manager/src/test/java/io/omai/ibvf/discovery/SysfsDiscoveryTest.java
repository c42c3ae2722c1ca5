package io.omai.ibvf.discovery;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.error.SysfsFormatException;
import io.omai.ibvf.error.SysfsMissingException;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.model.VirtualFunction;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Path;
import java.util.OptionalInt;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SysfsDiscoveryTest {

    @TempDir
    Path root;

    private FakeSysfs tree;
    private FakeKernel kernel;
    private FakePf ib;
    private SysfsDiscovery discovery;

    @BeforeEach
    void node() {
        tree = FakeSysfs.create(root);
        ib = tree.connectX6Ib(0, 16);
        tree.connectX6Eth(1, 8); // an Ethernet PF beside the IB one: discovery must leave it out
        tree.gpuBeside(ib);
        kernel = new FakeKernel(tree);
        discovery = new SysfsDiscovery(kernel);
    }

    @Test
    void discover_findsBothPfsWithLinkLayerNumaAndSriovCounts() {
        kernel.write("bus/pci/devices/" + ib.address() + "/sriov_numvfs", "8");

        assertThat(discovery.discover())
                .extracting(
                        PhysicalFunction::address,
                        PhysicalFunction::linkLayer,
                        PhysicalFunction::numaNode,
                        PhysicalFunction::totalVfs,
                        PhysicalFunction::numVfs)
                .containsExactly(
                        org.assertj.core.groups.Tuple.tuple(
                                PciAddress.of("0000:3b:00.0"), LinkLayer.INFINIBAND, OptionalInt.of(0), 16, 8),
                        org.assertj.core.groups.Tuple.tuple(
                                PciAddress.of("0000:5b:00.0"), LinkLayer.ETHERNET, OptionalInt.of(1), 8, 0));
    }

    @Test
    void discoverPf_readsClassDeviceIdNetdevRdmaDeviceAndPort() {
        PhysicalFunction pf = discovery.discoverPf(ib.address());

        assertThat(pf.pciClass()).isEqualTo(0x020700);
        assertThat(pf.vfDeviceId()).isEqualTo("101c");
        assertThat(pf.driver()).isEqualTo("mlx5_core");
        assertThat(pf.netdev()).contains("ibp59s0");
        assertThat(pf.rdmaDevice()).contains("mlx5_0");
        assertThat(pf.portState()).contains(PortState.ACTIVE);
        assertThat(pf.sysfsPath()).isEqualTo("devices/pci0000:38/0000:38:01.0/0000:39:00.0/0000:3a:00.0/0000:3b:00.0");
    }

    @Test
    void discoverPf_listsEachVfThroughItsVirtfnLinkWithItsOwnRdmaDevice() {
        kernel.write("bus/pci/devices/" + ib.address() + "/sriov_numvfs", "8");

        PhysicalFunction pf = discovery.discoverPf(ib.address());

        assertThat(pf.vfs()).hasSize(8);
        assertThat(pf.vfs())
                .extracting(VirtualFunction::address)
                .containsExactly(
                        PciAddress.of("0000:3b:00.1"),
                        PciAddress.of("0000:3b:00.2"),
                        PciAddress.of("0000:3b:00.3"),
                        PciAddress.of("0000:3b:00.4"),
                        PciAddress.of("0000:3b:00.5"),
                        PciAddress.of("0000:3b:00.6"),
                        PciAddress.of("0000:3b:00.7"),
                        PciAddress.of("0000:3b:01.0"));
        VirtualFunction vf7 = pf.vf(7).orElseThrow();
        assertThat(vf7.driver()).contains("mlx5_core");
        assertThat(vf7.netdev()).contains("ibp59s0v7");
        assertThat(vf7.rdmaDevice()).hasValueSatisfying(dev -> assertThat(dev).startsWith("mlx5_"));
        assertThat(vf7.nodeGuid()).contains(Guid.ZERO);
        assertThat(vf7.portState()).contains(PortState.DOWN);
        assertThat(pf.vfs()).extracting(VirtualFunction::rdmaDevice).doesNotHaveDuplicates();
    }

    @Test
    void discoverPf_withoutBoundDriverDerivesLinkLayerFromPciClass() {
        kernel.write("bus/pci/drivers/mlx5_core/unbind", ib.address().value());

        PhysicalFunction pf = discovery.discoverPf(ib.address());

        assertThat(pf.rdmaDevice()).isEmpty();
        assertThat(pf.linkLayer()).isEqualTo(LinkLayer.INFINIBAND);
        assertThat(pf.portState()).isEmpty();
    }

    @Test
    void unknownNumaNode_isEmptyNotZero() {
        tree.writeFile(ib.directory() + "/numa_node", "-1");

        assertThat(discovery.discoverPf(ib.address()).numaNode()).isEmpty();
    }

    @Test
    void nonNumericTotalVfs_isAFormatErrorNamingPathAndValue() {
        tree.writeFile(ib.directory() + "/sriov_totalvfs", "sixteen");

        assertThatThrownBy(() -> discovery.discoverPf(ib.address()))
                .isInstanceOfSatisfying(SysfsFormatException.class, e -> {
                    assertThat(e.path()).isEqualTo("bus/pci/devices/0000:3b:00.0/sriov_totalvfs");
                    assertThat(e.value()).isEqualTo("sixteen");
                })
                .hasMessageContaining("bus/pci/devices/0000:3b:00.0/sriov_totalvfs")
                .hasMessageContaining("'sixteen'")
                .hasMessageContaining("decimal");
    }

    @Test
    void missingSriovNumvfs_isAMissingErrorNamingThePath() {
        tree.delete(ib.directory() + "/sriov_numvfs");

        assertThatThrownBy(() -> discovery.discoverPf(ib.address()))
                .isInstanceOfSatisfying(
                        SysfsMissingException.class,
                        e -> assertThat(e.path()).isEqualTo("bus/pci/devices/0000:3b:00.0/sriov_numvfs"));
    }

    @Test
    void garbageLinkLayer_isAFormatErrorNamingPathAndValue() {
        tree.writeFile(ib.directory() + "/infiniband/mlx5_0/ports/1/link_layer", "Token Ring");

        assertThatThrownBy(() -> discovery.discoverPf(ib.address()))
                .isInstanceOf(SysfsFormatException.class)
                .hasMessageContaining("bus/pci/devices/0000:3b:00.0/infiniband/mlx5_0/ports/1/link_layer")
                .hasMessageContaining("'Token Ring'")
                .hasMessageContaining("'InfiniBand' or 'Ethernet'");
    }

    @Test
    void garbagePortStateAndClass_areFormatErrors() {
        tree.writeFile(ib.directory() + "/infiniband/mlx5_0/ports/1/state", "ACTIVE");
        assertThatThrownBy(() -> discovery.discoverPf(ib.address()))
                .isInstanceOf(SysfsFormatException.class)
                .hasMessageContaining("'ACTIVE'");

        tree.writeFile(ib.directory() + "/class", "network");
        assertThatThrownBy(() -> discovery.discover())
                .isInstanceOf(SysfsFormatException.class)
                .hasMessageContaining("bus/pci/devices/0000:3b:00.0/class")
                .hasMessageContaining("'network'");
    }

    @Test
    void unknownPf_isAMissingError() {
        assertThatThrownBy(() -> discovery.discoverPf(PciAddress.of("0000:99:00.0")))
                .isInstanceOf(SysfsMissingException.class)
                .hasMessageContaining("bus/pci/devices/0000:99:00.0");
    }
}
