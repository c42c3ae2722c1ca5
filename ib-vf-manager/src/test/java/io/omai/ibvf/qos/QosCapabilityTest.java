package io.omai.ibvf.qos;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.discovery.SysfsDiscovery;
import io.omai.ibvf.error.Errno;
import io.omai.ibvf.error.KernelRejectedException;
import io.omai.ibvf.error.QosUnsupportedException;
import io.omai.ibvf.kernel.TxRate;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class QosCapabilityTest {

    @TempDir
    Path root;

    private FakeKernel kernel;
    private FakePf ib;
    private FakePf eth;

    @BeforeEach
    void node() {
        FakeSysfs tree = FakeSysfs.create(root);
        ib = tree.connectX6Ib(0, 8);
        eth = tree.connectX6Eth(1, 8);
        kernel = new FakeKernel(tree);
        kernel.write("bus/pci/devices/" + ib.address() + "/sriov_numvfs", "2");
        kernel.write("bus/pci/devices/" + eth.address() + "/sriov_numvfs", "2");
    }

    @Test
    void matrix_ethernetEnforcesPerVfRates_infinibandSaysUnsupportedAndNamesTheSubnetManager() {
        QosCapability ethernet = QosCapability.of(LinkLayer.ETHERNET);
        QosCapability infiniband = QosCapability.of(LinkLayer.INFINIBAND);

        assertThat(ethernet.maxTxRate().enforced()).isTrue();
        assertThat(ethernet.minTxRate().enforced()).isTrue();
        assertThat(infiniband.maxTxRate())
                .isInstanceOfSatisfying(
                        QosCapability.Unsupported.class,
                        unsupported -> assertThat(unsupported.reason()).contains("ndo_set_vf_rate"));
        assertThat(infiniband.minTxRate().enforced()).isFalse();
        assertThat(infiniband.lever()).contains("subnet manager").contains("SL-to-VL");
    }

    @Test
    void rateOnEthernet_isSetThroughIpLinkOnThePf() {
        PhysicalFunction pf = new SysfsDiscovery(kernel).discoverPf(eth.address());

        new VfRateLimiter(kernel).apply(pf, 1, new TxRate(10_000, 2_000));

        assertThat(eth.configuredTxRate(1)).isEqualTo(new TxRate(10_000, 2_000));
        assertThat(kernel.ipLinkLog())
                .containsExactly("ip link set dev enp91s0f0np0 vf 1 max_tx_rate 10000 min_tx_rate 2000");
    }

    @Test
    void rateOnInfiniband_isRefusedLoudly_beforeReachingTheKernel() {
        PhysicalFunction pf = new SysfsDiscovery(kernel).discoverPf(ib.address());

        assertThatThrownBy(() -> new VfRateLimiter(kernel).apply(pf, 0, new TxRate(10_000, 0)))
                .isInstanceOf(QosUnsupportedException.class)
                .hasMessageContaining("0000:3b:00.0")
                .hasMessageContaining("10000 Mbit/s")
                .hasMessageContaining("subnet manager");
        assertThat(kernel.ipLinkLog()).isEmpty();
    }

    @Test
    void kernelRefusalOfARateOnIpoib_mapsToEopnotsupp() {
        assertThatThrownBy(() -> kernel.setVfTxRate(ib.netdev(), 0, new TxRate(1000, 0)))
                .isInstanceOfSatisfying(KernelRejectedException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.EOPNOTSUPP);
                    assertThat(e.target()).startsWith("ip link set dev ibp59s0 vf 0 max_tx_rate 1000");
                });
    }
}
