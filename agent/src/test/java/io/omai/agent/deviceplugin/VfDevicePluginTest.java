package io.omai.agent.deviceplugin;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.lifecycle.AgentStartException;
import io.omai.ibvf.kernel.FileSysfs;
import io.omai.ibvf.kernel.ProcessIpLink;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.VirtualFunction;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The VF plugin's lifecycle over the fake kernel: VFs created and given GUIDs before anything is advertised, the
 * list served on its own socket, and a driver reload (VFs and GUIDs wiped) noticed by polling, reconciled back to
 * the same VFs with the same GUIDs and pushed through ListAndWatch each step of the way.
 */
class VfDevicePluginTest {
    private static final String RANGE = "02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff";

    @TempDir
    Path dir;

    private VfDevicePlugin plugin;
    private ManagedChannel channel;

    @AfterEach
    void stop() {
        if (channel != null) {
            UnixSocketGrpc.close(channel);
        }
        if (plugin != null) {
            plugin.close();
        }
    }

    private AgentConfig config(String ibYaml) throws Exception {
        return ConfigLoader.parse(
                "test",
                """
                version: 1
                nodeName: worker-07
                directories:
                  devicePlugin: %s
                  podResourcesSocket: %s
                  state: %s
                kubelet:
                  reconcileInterval: 200ms
                ib:
                  enabled: true
                  guidRange: %s
                  pollInterval: 100ms
                  rebindLock: %s
                """.formatted(
                                        dir.resolve("dp"),
                                        dir.resolve("pr/kubelet.sock"),
                                        dir.resolve("state"),
                                        RANGE,
                                        dir.resolve("rebind.lock"))
                        + ibYaml);
    }

    @Test
    void createsTheVfsBeforeAdvertisingAndRestoresThemAfterADriverReload() throws Exception {
        FakeSysfs tree = FakeSysfs.create(dir.resolve("sys"));
        FakePf ib = tree.connectX6Ib(0, 8);
        FakeKernel kernel = new FakeKernel(tree);
        AgentConfig config = config("  desiredVfs: {\"" + ib.address() + "\": 3}\n");

        plugin = VfDevicePlugin.start(config, kernel, kernel, sysfs -> GpuPairing.UNKNOWN);

        assertThat(plugin.pluginSocket()).isEqualTo(dir.resolve("dp/omai-io-ib-vf.sock"));
        assertThat(Files.exists(plugin.pluginSocket())).isTrue();
        Map<String, Optional<Guid>> guids =
                guidsByVf(plugin.manager().discover().getFirst().vfs());
        assertThat(guids).hasSize(3).allSatisfy((vf, guid) -> assertThat(guid).isPresent());
        assertThat(Files.readString(dir.resolve("state").resolve(VfDevicePlugin.GUID_FILE)))
                .contains("worker-07");

        channel = UnixSocketGrpc.channel(plugin.pluginSocket());
        // Polling drives every step; the deadline only keeps a broken build from hanging.
        Iterator<ListAndWatchResponse> stream = DevicePluginGrpc.newBlockingStub(channel)
                .withDeadlineAfter(2, TimeUnit.MINUTES)
                .listAndWatch(Empty.getDefaultInstance());
        assertThat(healthy(stream.next()))
                .as("the first list: every VF, Healthy")
                .hasSize(3);

        kernel.reloadDriver(ib);

        // The poll sees the VFs gone (pushed), the plugin reconciles, the next poll sees them back (pushed).
        ListAndWatchResponse list = stream.next();
        while (healthy(list).size() < 3) {
            list = stream.next();
        }
        assertThat(list.getDevicesList())
                .extracting(Device::getID)
                .containsExactlyInAnyOrder(
                        ib.vfAddress(0).value(),
                        ib.vfAddress(1).value(),
                        ib.vfAddress(2).value());
        assertThat(guidsByVf(plugin.manager().discover().getFirst().vfs()))
                .as("the same GUIDs as before")
                .isEqualTo(guids);
    }

    @Test
    void aReconcileThatFailsIsTriedAgainOnceThePfCanTakeIt() throws Exception {
        FakeSysfs tree = FakeSysfs.create(dir.resolve("sys"));
        FakePf ib = tree.connectX6Ib(0, 8);
        FakeKernel kernel = new FakeKernel(tree);
        // Without its driver the PF refuses sriov_numvfs (ENOENT): the reconcile at start fails.
        kernel.write("bus/pci/drivers/mlx5_core/unbind", ib.address().value());

        plugin = VfDevicePlugin.start(config("  desiredVfs: 2\n"), kernel, kernel, sysfs -> GpuPairing.UNKNOWN);
        channel = UnixSocketGrpc.channel(plugin.pluginSocket());
        Iterator<ListAndWatchResponse> stream = DevicePluginGrpc.newBlockingStub(channel)
                .withDeadlineAfter(2, TimeUnit.MINUTES)
                .listAndWatch(Empty.getDefaultInstance());
        assertThat(stream.next().getDevicesList())
                .as("nothing to advertise yet")
                .isEmpty();

        kernel.write("bus/pci/drivers/mlx5_core/bind", ib.address().value());

        ListAndWatchResponse list = stream.next();
        while (healthy(list).size() < 2) {
            list = stream.next();
        }
        assertThat(list.getDevicesList())
                .extracting(Device::getID)
                .containsExactlyInAnyOrder(
                        ib.vfAddress(0).value(), ib.vfAddress(1).value());
    }

    @Test
    void aSysfsRootWithoutPciDevicesStopsTheStartNamingTheKey() throws Exception {
        Path nowhere = dir.resolve("not-sysfs");

        AgentConfig config = config("  sysfsRoot: " + nowhere + "\n");

        assertThatThrownBy(() -> VfDevicePlugin.start(
                        config,
                        new FileSysfs(config.ib().sysfsRoot()),
                        ProcessIpLink.system(),
                        sysfs -> GpuPairing.UNKNOWN))
                .isInstanceOf(AgentStartException.class)
                .hasMessage("ib.sysfsRoot " + nowhere + " has no bus/pci/devices; expected the host's sysfs (/sys, "
                        + "mounted read-write by components/ib-sriov)");
        assertThat(dir.resolve("dp/omai-io-ib-vf.sock")).doesNotExist();
    }

    private static List<Device> healthy(ListAndWatchResponse list) {
        return list.getDevicesList().stream()
                .filter(d -> d.getHealth().equals(DeviceListPublisher.HEALTHY))
                .toList();
    }

    private static Map<String, Optional<Guid>> guidsByVf(List<VirtualFunction> vfs) {
        return vfs.stream().collect(Collectors.toMap(vf -> vf.address().value(), VirtualFunction::nodeGuid));
    }
}
