package io.omai.agent.deviceplugin;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.ManagedChannel;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * VF resources over the fake kernel: by default {@code omai.io/ib-vf} offers only InfiniBand PFs' VFs (a RoCE
 * NIC's VFs were offered under it before, so a pod asking for InfiniBand could get a RoCE VF); a configured
 * {@code omai.io/roce-vf} offers the Ethernet PF's VFs on its own socket.
 */
class VfResourcesTest {
    private static final String RANGE = "02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff";

    @TempDir
    Path dir;

    private FakePf ib;
    private FakePf roce;
    private FakeKernel kernel;
    private VfDevicePlugin plugin;
    private final List<ManagedChannel> channels = new ArrayList<>();

    @BeforeEach
    void tree() {
        FakeSysfs tree = FakeSysfs.create(dir.resolve("sys"));
        ib = tree.connectX6Ib(0, 8);
        roce = tree.connectX6Eth(1, 8);
        kernel = new FakeKernel(tree);
    }

    @AfterEach
    void stop() {
        channels.forEach(UnixSocketGrpc::close);
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
                ib:
                  enabled: true
                  guidRange: %s
                  pollInterval: 100ms
                  rebindLock: %s
                  desiredVfs: {"%s": 2, "%s": 3}
                """.formatted(
                                        dir.resolve("dp"),
                                        dir.resolve("pr/kubelet.sock"),
                                        dir.resolve("state"),
                                        RANGE,
                                        dir.resolve("rebind.lock"),
                                        ib.address(),
                                        roce.address())
                        + ibYaml);
    }

    private List<String> listed(Path socket) {
        ManagedChannel channel = UnixSocketGrpc.channel(socket);
        channels.add(channel);
        Iterator<ListAndWatchResponse> stream = DevicePluginGrpc.newBlockingStub(channel)
                .withDeadlineAfter(1, TimeUnit.MINUTES)
                .listAndWatch(Empty.getDefaultInstance());
        return stream.next().getDevicesList().stream().map(Device::getID).toList();
    }

    private static List<String> vfs(FakePf pf, int count) {
        return IntStream.range(0, count).mapToObj(i -> pf.vfAddress(i).value()).toList();
    }

    @Test
    void byDefaultTheIbVfResourceOffersNoRoceVf() throws Exception {
        plugin = VfDevicePlugin.start(config(""), kernel, kernel, sysfs -> GpuPairing.UNKNOWN);

        assertThat(listed(plugin.pluginSocket())).containsExactlyInAnyOrderElementsOf(vfs(ib, 2));
        var pfs = plugin.monitor().current().pfs();
        assertThat(pfs).hasSize(2);
        assertThat(pfs)
                .allSatisfy(pf -> assertThat(plugin.resourceOf(pf.pf()))
                        .isEqualTo(
                                pf.pf().address().equals(ib.address())
                                        ? java.util.Optional.of("omai.io/ib-vf")
                                        : java.util.Optional.empty()));
        // still reconciled: the RoCE PF got its VFs, they are just not offered as InfiniBand
        assertThat(pfs.stream()
                        .filter(pf -> pf.pf().address().equals(roce.address()))
                        .findFirst()
                        .orElseThrow()
                        .vfs())
                .hasSize(3);
    }

    @Test
    void aRoceResourceOffersTheEthernetPfsVfsOnItsOwnSocket() throws Exception {
        plugin = VfDevicePlugin.start(config("""
                          resources:
                            - {name: omai.io/ib-vf, linkTypes: [infiniband]}
                            - {name: omai.io/roce-vf, linkTypes: [ethernet], vendors: ["15b3"]}
                        """), kernel, kernel, sysfs -> GpuPairing.UNKNOWN);

        assertThat(plugin.pluginSocket("omai.io/roce-vf")).isEqualTo(dir.resolve("dp/omai-io-roce-vf.sock"));
        assertThat(listed(plugin.pluginSocket("omai.io/ib-vf"))).containsExactlyInAnyOrderElementsOf(vfs(ib, 2));
        assertThat(listed(plugin.pluginSocket("omai.io/roce-vf"))).containsExactlyInAnyOrderElementsOf(vfs(roce, 3));
    }

    @Test
    void aSelectorByPfNameOrDeviceIdPicksOnlyThatPf() throws Exception {
        plugin =
                VfDevicePlugin.start(config("""
                          resources:
                            - {name: omai.io/rail-a, linkTypes: [ethernet], pfNames: [%s]}
                            - {name: omai.io/other, linkTypes: [infiniband], devices: ["1017"]}
                        """.formatted(roce.netdev())), kernel, kernel, sysfs -> GpuPairing.UNKNOWN);

        assertThat(listed(plugin.pluginSocket("omai.io/rail-a"))).containsExactlyInAnyOrderElementsOf(vfs(roce, 3));
        // the fake PFs are ConnectX-6 (101b): a selector for an InfiniBand 1017 (ConnectX-5) offers nothing
        assertThat(listed(plugin.pluginSocket("omai.io/other"))).isEmpty();
        assertThat(new VfSelection(config("").ib().resources(), kernel)
                        .resourcesOf(plugin.monitor().current().pfs().stream()
                                .filter(pf -> pf.pf()
                                        .address()
                                        .equals(PciAddress.of(ib.address().value())))
                                .findFirst()
                                .orElseThrow()
                                .pf()))
                .containsExactly("omai.io/ib-vf");
    }
}
