package io.omai.ibvf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.config.NodeRebindLock;
import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.error.Errno;
import io.omai.ibvf.error.KernelRejectedException;
import io.omai.ibvf.error.VfNotReadyException;
import io.omai.ibvf.guid.FileGuidStore;
import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.model.VirtualFunction;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IbVfManagerTest {

    static final GuidRange NODE_RANGE = GuidRange.parse("02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff");

    @TempDir
    Path root;

    @TempDir
    Path state;

    private FakeKernel kernel;
    private FakePf ib;
    private FakePf eth;
    private final List<Duration> sleeps = new ArrayList<>();

    @BeforeEach
    void node() {
        FakeSysfs tree = FakeSysfs.create(root);
        ib = tree.connectX6Ib(0, 16);
        eth = tree.connectX6Eth(1, 8);
        kernel = new FakeKernel(tree);
    }

    private IbVfManager manager() {
        return new IbVfManager(
                new IbVfManagerConfig(
                        "worker-07", NODE_RANGE, VfLinkState.AUTO, new ReadinessPolicy(5, Duration.ofMillis(200))),
                kernel,
                kernel,
                new FileGuidStore(state.resolve("guids")),
                new NodeRebindLock(state.resolve("rebind.lock")),
                sleeps::add);
    }

    @Test
    void reconcile_zeroToEightToFour_goesThroughZeroAndLeavesEveryVfActiveWithItsGuid() {
        IbVfManager manager = manager();

        IbVfManager.ReconcileResult toEight = manager.reconcile(ib.address(), 8);

        assertThat(toEight.previousVfs()).isZero();
        assertThat(toEight.enabledVfs()).isEqualTo(8);
        assertThat(toEight.reconfigured()).containsExactly(0, 1, 2, 3, 4, 5, 6, 7);
        PhysicalFunction pf = manager.discover().getFirst();
        assertThat(pf.vfs()).hasSize(8).allSatisfy(vf -> {
            assertThat(vf.nodeGuid()).contains(toEight.guids().get(vf.index()));
            assertThat(vf.portGuid()).contains(toEight.guids().get(vf.index()));
            assertThat(vf.portState()).contains(PortState.ACTIVE);
        });

        kernel.clearLogs();
        IbVfManager.ReconcileResult toFour = manager.reconcile(ib.address(), 4);

        String numvfs = "bus/pci/devices/0000:3b:00.0/sriov_numvfs";
        assertThat(kernel.writeLog()).startsWith(numvfs + "=0", numvfs + "=4");
        assertThat(toFour.enabledVfs()).isEqualTo(4);
        assertThat(toFour.guids())
                .isEqualTo(Map.of(
                        0,
                        toEight.guids().get(0),
                        1,
                        toEight.guids().get(1),
                        2,
                        toEight.guids().get(2),
                        3,
                        toEight.guids().get(3)));
        assertThat(manager.discover().getFirst().vfs()).hasSize(4);
    }

    @Test
    void reconcile_isIdempotent_noWritesWhenAlreadyConverged() {
        IbVfManager manager = manager();
        manager.reconcile(ib.address(), 8);
        kernel.clearLogs();

        IbVfManager.ReconcileResult again = manager.reconcile(ib.address(), 8);

        assertThat(again.reconfigured()).isEmpty();
        assertThat(kernel.writeLog()).isEmpty();
        assertThat(kernel.ipLinkLog()).isEmpty();
    }

    @Test
    void guids_areUniqueValidInRangeAndIdenticalForANewManagerInstance() {
        Map<Integer, Guid> first = manager().reconcile(ib.address(), 8).guids();

        assertThat(first.values()).hasSize(8).doesNotHaveDuplicates().allSatisfy(guid -> {
            assertThat(guid.isAssignable()).isTrue();
            assertThat(NODE_RANGE.contains(guid)).isTrue();
        });
        Guid pfGuid = manager().discover().getFirst().nodeGuid().orElseThrow();
        assertThat(first.values()).doesNotContain(pfGuid);

        kernel.reloadDriver(ib); // the NIC forgets every VF GUID
        IbVfManager restarted = manager();
        IbVfManager.ReconcileResult afterRestart = restarted.reconcile(ib.address(), 8);

        assertThat(afterRestart.guids()).isEqualTo(first);
        assertThat(afterRestart.reconfigured()).hasSize(8);
        assertThat(restarted.discover().getFirst().vfs())
                .extracting(VirtualFunction::nodeGuid)
                .containsExactlyElementsOf(
                        first.values().stream().map(Optional::of).toList());
    }

    @Test
    void guids_areSetThroughIpLinkOnThePfIpoibNetdevBeforeTheRebind() {
        manager().reconcile(ib.address(), 1);

        assertThat(kernel.ipLinkLog())
                .containsExactly(
                        "ip link set dev ibp59s0 vf 0 node_guid "
                                + kernel.tree().pfs().getFirst().configuredNodeGuid(0) + " port_guid "
                                + kernel.tree().pfs().getFirst().configuredNodeGuid(0),
                        "ip link set dev ibp59s0 vf 0 state auto");
        assertThat(kernel.writeLog())
                .containsSubsequence(
                        "bus/pci/drivers/mlx5_core/unbind=0000:3b:00.1", "bus/pci/drivers/mlx5_core/bind=0000:3b:00.1");
    }

    @Test
    void mlnxOfedPf_getsGuidsAndPolicyThroughItsPerVfSysfsFiles() {
        FakePf ofed = kernel.tree().connectX6IbMlnxOfed(0, 4);

        IbVfManager.ReconcileResult result = manager().reconcile(ofed.address(), 2);

        assertThat(kernel.ipLinkLog()).isEmpty();
        String vf1 = "bus/pci/devices/" + ofed.address() + "/sriov/1/";
        assertThat(kernel.writeLog())
                .contains(
                        vf1 + "node=" + result.guids().get(1),
                        vf1 + "port=" + result.guids().get(1),
                        vf1 + "policy=Follow");
        assertThat(manager().discover())
                .filteredOn(pf -> pf.address().equals(ofed.address()))
                .singleElement()
                .satisfies(pf -> assertThat(pf.vfs())
                        .allSatisfy(vf -> assertThat(vf.nodeGuid())
                                .contains(result.guids().get(vf.index()))));
    }

    @Test
    void reconcile_aboveTotalVfs_isRefusedBeforeTheKernelSeesIt() {
        assertThatThrownBy(() -> manager().reconcile(ib.address(), 17))
                .isInstanceOfSatisfying(KernelRejectedException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.ERANGE);
                    assertThat(e.target()).isEqualTo("bus/pci/devices/0000:3b:00.0/sriov_numvfs");
                    assertThat(e.value()).isEqualTo("17");
                })
                .hasMessageContaining("sriov_totalvfs is 16");
        assertThat(kernel.writeLog()).isEmpty();
    }

    @Test
    void fakeKernel_rejectsTheCasesTheRealKernelRejects_andTheMappingNamesPathAndValue() {
        String numvfs = "bus/pci/devices/0000:3b:00.0/sriov_numvfs";
        kernel.write(numvfs, "4");

        assertThatThrownBy(() -> kernel.write(numvfs, "8"))
                .isInstanceOfSatisfying(
                        KernelRejectedException.class,
                        e -> assertThat(e.errno()).isEqualTo(Errno.EBUSY))
                .hasMessageContaining(numvfs)
                .hasMessageContaining("'8'")
                .hasMessageContaining("write 0 before");
        assertThatCode(() -> kernel.write(numvfs, "0")).doesNotThrowAnyException();
        assertThatThrownBy(() -> kernel.write(numvfs, "17"))
                .isInstanceOfSatisfying(
                        KernelRejectedException.class,
                        e -> assertThat(e.errno()).isEqualTo(Errno.ERANGE));
        assertThatThrownBy(() -> kernel.write(numvfs, "many"))
                .isInstanceOfSatisfying(
                        KernelRejectedException.class,
                        e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL));
        kernel.write("bus/pci/drivers/mlx5_core/unbind", "0000:3b:00.0");
        assertThatThrownBy(() -> kernel.write(numvfs, "2"))
                .isInstanceOfSatisfying(
                        KernelRejectedException.class,
                        e -> assertThat(e.errno()).isEqualTo(Errno.ENOENT))
                .hasMessageContaining("no driver bound");
    }

    @Test
    void reconcile_fromADifferentNonZeroCount_neverHitsEbusy() {
        kernel.write("bus/pci/devices/0000:3b:00.0/sriov_numvfs", "3");

        IbVfManager.ReconcileResult result = manager().reconcile(ib.address(), 8);

        assertThat(result.previousVfs()).isEqualTo(3);
        assertThat(result.enabledVfs()).isEqualTo(8);
    }

    @Test
    void driverReload_wipesVfsAndGuids_andReconcileRestoresTheSameOnes() {
        IbVfManager manager = manager();
        Map<Integer, Guid> before = manager.reconcile(ib.address(), 8).guids();

        kernel.reloadDriver(ib);
        assertThat(manager.discover().getFirst().numVfs()).isZero();

        IbVfManager.ReconcileResult restored = manager.reconcile(ib.address(), 8);
        assertThat(restored.previousVfs()).isZero();
        assertThat(restored.guids()).isEqualTo(before);
        assertThat(manager.discover().getFirst().vfs())
                .allSatisfy(vf -> assertThat(vf.portState()).contains(PortState.ACTIVE));
    }

    @Test
    void vfsThatNeverGetADriver_failAfterTheBoundedWait_withoutRealSleeping() {
        kernel.setDriversAutoprobe(ib, false);

        assertThatThrownBy(() -> manager().reconcile(ib.address(), 2))
                .isInstanceOf(VfNotReadyException.class)
                .hasMessageContaining("after 5 checks")
                .hasMessageContaining("0000:3b:00.1")
                .hasMessageContaining("sriov_drivers_autoprobe");
        assertThat(sleeps).hasSize(4).containsOnly(Duration.ofMillis(200));
    }

    @Test
    void ethernetPf_getsVfsButNoGuidChanges() {
        IbVfManager.ReconcileResult result = manager().reconcile(eth.address(), 4);

        assertThat(result.enabledVfs()).isEqualTo(4);
        assertThat(result.guids()).isEmpty();
        assertThat(kernel.ipLinkLog()).isEmpty();
    }
}
