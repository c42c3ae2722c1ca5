package io.omai.agent.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.ibvf.health.VfHealth;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class VfMetricsTest {
    private final AtomicReference<InventorySnapshot> inventory = new AtomicReference<>(InventorySnapshot.EMPTY);
    private final AtomicReference<Set<PciAddress>> allocated = new AtomicReference<>(Set.of());
    private final AgentMetrics metrics = new AgentMetrics("node-1", System::nanoTime);

    {
        metrics.bindVfs(new VfMetricsSource() {
            @Override
            public InventorySnapshot inventory() {
                return inventory.get();
            }

            @Override
            public Set<PciAddress> allocatedVfs() {
                return allocated.get();
            }
        });
    }

    @AfterEach
    void stop() {
        metrics.close();
    }

    @Test
    void vfsShowAllocationHealthAndTheirPfsQosCapability() {
        inventory.set(VfInventories.twoPfs());
        allocated.set(Set.of(PciAddress.of("0000:3b:00.3")));

        Scrape scrape = Scrape.of(metrics);
        String[] first = {"pf", "0000:3b:00.0", "vf", "0000:3b:00.2", "link_layer", "InfiniBand"};
        String[] second = {"pf", "0000:3b:00.0", "vf", "0000:3b:00.3", "link_layer", "InfiniBand"};
        assertThat(scrape.get("omai_vf_allocated", first)).isZero();
        assertThat(scrape.get("omai_vf_allocated", second)).isEqualTo(1);
        assertThat(scrape.get("omai_vf_healthy", first)).isEqualTo(1);
        assertThat(scrape.get("omai_vf_healthy", "vf", "0000:5e:00.2", "link_layer", "Ethernet"))
                .isZero();
        assertThat(scrape.get("omai_vf_qos_rate_limit_supported", "pf", "0000:3b:00.0", "link_layer", "InfiniBand"))
                .isZero();
        assertThat(scrape.get("omai_vf_qos_rate_limit_supported", "pf", "0000:5e:00.0", "link_layer", "Ethernet"))
                .isEqualTo(1);

        allocated.set(Set.of());
        assertThat(Scrape.of(metrics).get("omai_vf_allocated", second))
                .as("released")
                .isZero();
    }

    @Test
    void vfsAndPfsThatDisappearLoseTheirSeries() {
        inventory.set(new InventorySnapshot(List.of(
                VfInventories.pf("0000:3b:00.0", LinkLayer.INFINIBAND, 4, VfHealth.HEALTHY),
                VfInventories.pf("0000:5e:00.0", LinkLayer.ETHERNET, 1, VfHealth.HEALTHY))));
        assertThat(Scrape.of(metrics).count("omai_vf_healthy")).isEqualTo(5);

        inventory.set(new InventorySnapshot(
                List.of(VfInventories.pf("0000:3b:00.0", LinkLayer.INFINIBAND, 2, VfHealth.HEALTHY))));
        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.count("omai_vf_healthy")).isEqualTo(2);
        assertThat(scrape.count("omai_vf_allocated")).isEqualTo(2);
        assertThat(scrape.value("omai_vf_healthy", "vf", "0000:3b:00.5")).isEmpty();
        assertThat(scrape.anySampleLabelled("pf", "0000:5e:00.0")).isFalse();
    }
}
