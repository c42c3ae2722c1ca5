package io.omai.agent.schedapi;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.tenancy.Subscription;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class NodeSnapshotTest {
    private final NodeSnapshot node = NodeFixtures.eightGpus();

    @Test
    void vfs_freeOnesInHcaOrder() {
        NodeSnapshot oneTaken = node.withHcas(List.of(new HcaSnapshot(
                "mlx5_0",
                "0000:3b:00.0",
                0,
                "InfiniBand",
                List.of(NodeFixtures.vf(0, 0), NodeFixtures.vf(0, 1)),
                Set.of(NodeFixtures.vf(0, 1)),
                List.of())));

        assertThat(oneTaken.vfIds()).containsExactly(NodeFixtures.vf(0, 0), NodeFixtures.vf(0, 1));
        assertThat(oneTaken.freeVfIds()).containsExactly(NodeFixtures.vf(0, 1));
    }

    @Test
    void construction_refusesDuplicateGpusAndVfs() {
        assertThatThrownBy(() ->
                        node.withGpus(List.of(node.gpus().get(0), node.gpus().get(0))))
                .hasMessage("node node-a: GPU " + NodeFixtures.uuid(0) + " listed twice");
        assertThatThrownBy(() ->
                        node.withHcas(List.of(node.hcas().get(0), node.hcas().get(0))))
                .hasMessageContaining("VF " + NodeFixtures.vf(0, 0) + " listed twice");
        assertThatThrownBy(() -> new HcaSnapshot(
                        "mlx5_0", "0000:3b:00.0", 0, "InfiniBand", List.of("a"), Set.of("b"), List.of()))
                .hasMessage("HCA mlx5_0: free VFs [b] not among [a]");
    }

    @Test
    void inventory_updatesBumpTheGenerationAndNotify() {
        var inventory = new StaticNodeInventory(node);
        var notified = new java.util.concurrent.atomic.AtomicInteger();
        Subscription subscription = inventory.onChange(notified::incrementAndGet);
        inventory.allocate(NodeFixtures.uuid(0), "team-a", 100, 1L << 30);
        inventory.setHealth(NodeFixtures.uuid(1), DeviceHealth.unhealthy("XID 79"));
        subscription.close();
        inventory.freeAll(NodeFixtures.uuid(0));

        assertThat(inventory.snapshot().generation()).isEqualTo(node.generation() + 3);
        assertThat(notified).hasValue(2);
        assertThat(inventory.snapshot().gpus().get(0).tenants()).isEmpty();
        assertThat(inventory.snapshot().gpus().get(1).healthy()).isFalse();
        assertThat(inventory.snapshot().tenants()).isEmpty();
        assertThatThrownBy(() -> inventory.allocate("GPU-x", "team-a", 1, 0)).hasMessage("no GPU GPU-x on node node-a");
    }
}
