package io.omai.ibvf.report;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.IbVfManagerConfig;
import io.omai.ibvf.config.NodeRebindLock;
import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.error.SysfsFormatException;
import io.omai.ibvf.guid.FileGuidStore;
import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IbInventoryReportTest {

    @TempDir
    Path root;

    @TempDir
    Path state;

    private FakeSysfs tree;
    private FakeKernel kernel;
    private FakePf ib;
    private Map<Integer, Guid> guids;

    @BeforeEach
    void node() {
        tree = FakeSysfs.create(root);
        ib = tree.connectX6Ib(0, 16);
        FakePf eth = tree.connectX6Eth(1, 8);
        kernel = new FakeKernel(tree);
        IbVfManager manager = new IbVfManager(
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
        guids = manager.reconcile(ib.address(), 8).guids();
        manager.reconcile(eth.address(), 2);
    }

    @Test
    void text_showsPfsLinkLayerNumaQosAndEachVfWithItsUverbsGuidsAndHealth() {
        kernel.setPfPortState(ib, PortState.DOWN);

        String text = IbInventoryReport.render(root, ReportFormat.TEXT);

        assertThat(text)
                .contains(
                        "PF 0000:3b:00.0  link InfiniBand  numa 0  netdev ibp59s0  rdma mlx5_0  port 1: DOWN  VFs 8/16")
                .contains("PF 0000:5b:00.0  link Ethernet  numa 1")
                .contains("QoS per-VF max_tx_rate: unsupported: InfiniBand PFs have no per-VF rate limit")
                .contains("QoS per-VF max_tx_rate: supported via ip link set <pf> vf N max_tx_rate")
                .contains("QoS lever: subnet manager QoS")
                .containsPattern("VF +PCI +RDMA +UVERBS +NODE GUID +PORT GUID +PORT +HEALTH")
                .containsPattern("0 +0000:3b:00\\.1 +mlx5_\\d+ +uverbs\\d+ +" + guids.get(0) + " +" + guids.get(0)
                        + " +1: DOWN +Unhealthy")
                .contains("! PF_PORT_NOT_ACTIVE: PF 0000:3b:00.0 port state is 1: DOWN");
    }

    @Test
    void json_carriesTheSameFactsWithNullsForAbsentValues() {
        kernel.write("bus/pci/drivers/mlx5_core/unbind", ib.vfAddress(7).value());

        String json = IbInventoryReport.render(root, ReportFormat.JSON);

        assertThat(json)
                .startsWith("{\n  \"pfs\": [\n    {\n      \"pciAddress\": \"0000:3b:00.0\",")
                .contains("\"linkLayer\": \"InfiniBand\"", "\"numaNode\": 0", "\"totalVfs\": 16", "\"numVfs\": 8")
                .contains("\"maxTxRate\": {\n          \"supported\": false,")
                .contains(
                        "\"pciAddress\": \"0000:3b:00.1\"",
                        "\"nodeGuid\": \"" + guids.get(0) + "\"",
                        "\"healthy\": true")
                .contains(
                        "\"pciAddress\": \"0000:3b:01.0\",\n          \"rdmaDevice\": null,\n          \"uverbs\": null")
                .contains("\"NO_DRIVER: VF 0000:3b:01.0 has no driver bound\"")
                .contains("\"linkLayer\": \"Ethernet\"", "\"supported\": true")
                .endsWith("}\n");
        assertThat(json.chars().filter(c -> c == '{').count())
                .isEqualTo(json.chars().filter(c -> c == '}').count());
        assertThat(json.chars().filter(c -> c == '[').count())
                .isEqualTo(json.chars().filter(c -> c == ']').count());
    }

    @Test
    void malformedTree_failsTheReportWithTheTypedError() {
        tree.writeFile(ib.directory() + "/sriov_totalvfs", "lots");

        assertThatThrownBy(() -> IbInventoryReport.render(root, ReportFormat.TEXT))
                .isInstanceOf(SysfsFormatException.class)
                .hasMessageContaining("'lots'");
    }

    @Test
    void emptyNode_saysSo() {
        assertThat(IbInventoryReport.render(state, ReportFormat.TEXT)).isEqualTo("No SR-IOV capable RDMA PFs found.\n");
        assertThat(IbInventoryReport.render(state, ReportFormat.JSON)).isEqualTo("{\n  \"pfs\": []\n}\n");
    }

    @Test
    void format_parsesCliSpellings() {
        assertThat(ReportFormat.parse("json")).isEqualTo(ReportFormat.JSON);
        assertThatThrownBy(() -> ReportFormat.parse("yaml"))
                .hasMessageContaining("'yaml'")
                .hasMessageContaining("'text' or 'json'");
    }
}
