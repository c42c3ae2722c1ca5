package io.omai.ibvf.health;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.IbVfManagerConfig;
import io.omai.ibvf.config.NodeRebindLock;
import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.error.IbVfException;
import io.omai.ibvf.error.SysfsFormatException;
import io.omai.ibvf.guid.FileGuidStore;
import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.health.VfHealth.Reason;
import io.omai.ibvf.inventory.IbVfListener;
import io.omai.ibvf.inventory.IbVfMonitor;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.inventory.VfStatus;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VfHealthMonitorTest {

    @TempDir
    Path root;

    @TempDir
    Path state;

    private FakeSysfs tree;
    private FakeKernel kernel;
    private FakePf ib;
    private IbVfManager manager;
    private IbVfMonitor monitor;
    private final RecordingListener listener = new RecordingListener();

    @BeforeEach
    void node() throws Exception {
        tree = FakeSysfs.create(root);
        ib = tree.connectX6Ib(0, 16);
        kernel = new FakeKernel(tree);
        manager = new IbVfManager(
                new IbVfManagerConfig(
                        "worker-07",
                        GuidRange.parse("02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff"),
                        VfLinkState.AUTO,
                        new ReadinessPolicy(3, Duration.ZERO)),
                kernel,
                kernel,
                new FileGuidStore(state.resolve("guids")),
                new NodeRebindLock(state.resolve("lock")),
                duration -> {});
        manager.reconcile(ib.address(), 8);
        monitor = manager.newMonitor();
        monitor.poll();
        monitor.subscribe(listener);
    }

    @Test
    void subscribe_deliversTheCurrentInventoryFirst() {
        assertThat(listener.snapshots)
                .singleElement()
                .satisfies(snapshot -> assertThat(snapshot.vfs())
                        .hasSize(8)
                        .allSatisfy(vf -> assertThat(vf.health()).isEqualTo(VfHealth.HEALTHY)));
    }

    @Test
    void pfPortDown_makesEveryVfUnhealthy_andRecoveryMakesThemHealthyAgain() {
        kernel.setPfPortState(ib, PortState.DOWN);
        InventorySnapshot down = monitor.poll();

        assertThat(down.vfs())
                .hasSize(8)
                .allSatisfy(
                        vf -> assertThat(reasons(vf)).contains(Reason.PF_PORT_NOT_ACTIVE, Reason.STATE_NOT_AS_DESIRED));

        kernel.setPfPortState(ib, PortState.ACTIVE);
        InventorySnapshot up = monitor.poll();

        assertThat(up.vfs())
                .allSatisfy(vf -> assertThat(vf.health().isHealthy()).isTrue());
        assertThat(listener.snapshots).hasSize(3);
    }

    @Test
    void unchangedInventory_notifiesNobody() {
        monitor.poll();
        monitor.poll();

        assertThat(listener.snapshots).hasSize(1);
    }

    @Test
    void vfWithoutDriver_isUnhealthy_untilRebound() {
        PciAddress vf3 = ib.vfAddress(3);
        kernel.write("bus/pci/drivers/mlx5_core/unbind", vf3.value());

        assertThat(healthOf(monitor.poll(), vf3))
                .satisfies(health ->
                        assertThat(reasonsOf(health)).containsExactly(Reason.NO_DRIVER, Reason.NO_RDMA_DEVICE));

        kernel.write("bus/pci/drivers/mlx5_core/bind", vf3.value());

        assertThat(healthOf(monitor.poll(), vf3).isHealthy()).isTrue();
    }

    @Test
    void driverReload_removesVfsAndTellsListeners_reconcileBringsThemBackHealthy() {
        kernel.reloadDriver(ib);
        assertThat(monitor.poll().vfs()).isEmpty();

        manager.reconcile(ib.address(), 8);
        InventorySnapshot restored = monitor.poll();

        assertThat(restored.vfs())
                .hasSize(8)
                .allSatisfy(vf -> assertThat(vf.health().isHealthy()).isTrue());
        assertThat(listener.snapshots)
                .extracting(snapshot -> snapshot.vfs().size())
                .containsExactly(8, 0, 8);
    }

    @Test
    void vfsBackWithoutTheirGuids_areUnhealthyWithAnInvalidGuid() {
        kernel.reloadDriver(ib);
        kernel.write("bus/pci/devices/" + ib.address() + "/sriov_numvfs", "8");

        assertThat(monitor.poll().vfs())
                .hasSize(8)
                .allSatisfy(vf -> assertThat(reasons(vf)).contains(Reason.GUID_INVALID, Reason.STATE_NOT_AS_DESIRED));
    }

    @Test
    void vfWithoutGids0_isUnhealthyWithItsPortGuidAbsent_notAllZeros() {
        VfStatus before = monitor.poll().vfs().stream()
                .filter(status -> status.vf().address().equals(ib.vfAddress(2)))
                .findFirst()
                .orElseThrow();
        String rdma = before.vf().rdmaDevice().orElseThrow();
        tree.delete(SysfsLayout.rdmaPort(ib.vfAddress(2), rdma, 1) + "/gids/0");

        VfHealth health = healthOf(monitor.poll(), ib.vfAddress(2));

        assertThat(reasonsOf(health)).containsExactly(Reason.GUID_INVALID);
        assertThat(health.toString()).contains("port GUID absent").doesNotContain("0000:0000:0000:0000");
    }

    @Test
    void vfShowingAnotherGuidThanAssigned_isUnhealthy() {
        Guid foreign = Guid.parse("02:00:00:99:00:00:00:01").orElseThrow();
        kernel.setVfGuids(ib.netdev(), 2, foreign, foreign);
        kernel.write("bus/pci/drivers/mlx5_core/unbind", ib.vfAddress(2).value());
        kernel.write("bus/pci/drivers/mlx5_core/bind", ib.vfAddress(2).value());

        VfHealth health = healthOf(monitor.poll(), ib.vfAddress(2));

        assertThat(reasonsOf(health)).containsExactly(Reason.GUID_NOT_AS_ASSIGNED);
        assertThat(health.toString()).contains(foreign.toString());
    }

    @Test
    void malformedSysfs_isReportedToListeners_andThePreviousInventoryStays() {
        tree.writeFile(ib.directory() + "/sriov_numvfs", "eight");

        InventorySnapshot kept = monitor.poll();

        assertThat(kept.vfs()).hasSize(8);
        assertThat(listener.failures).singleElement().isInstanceOf(SysfsFormatException.class);
    }

    private static List<Reason> reasons(VfStatus vf) {
        return reasonsOf(vf.health());
    }

    private static List<Reason> reasonsOf(VfHealth health) {
        return health instanceof VfHealth.Unhealthy(List<VfHealth.Problem> problems)
                ? problems.stream().map(VfHealth.Problem::reason).toList()
                : List.of();
    }

    private static VfHealth healthOf(InventorySnapshot snapshot, PciAddress vf) {
        return snapshot.healthByVf().get(vf);
    }

    private static final class RecordingListener implements IbVfListener {
        final List<InventorySnapshot> snapshots = new ArrayList<>();
        final List<IbVfException> failures = new ArrayList<>();

        @Override
        public void onInventoryChanged(InventorySnapshot snapshot) {
            snapshots.add(snapshot);
        }

        @Override
        public void onDiscoveryFailed(IbVfException failure) {
            failures.add(failure);
        }
    }
}
