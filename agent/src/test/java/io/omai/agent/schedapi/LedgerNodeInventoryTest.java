package io.omai.agent.schedapi;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.HeldDevices;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.tenancy.Subscription;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LedgerNodeInventoryTest {
    private static final long MEMORY = 80L << 30;

    @TempDir
    Path state;

    private static List<String> ids(int gpu, int from, int count) {
        return IntStream.range(from, from + count)
                .mapToObj(s -> new MilliGpuId(FakeNvml.uuid(gpu), s).id())
                .toList();
    }

    @Test
    void snapshotFollowsTheLedgerHealthAndLabels() throws Exception {
        Map<String, GpuHealth> health = new ConcurrentHashMap<>();
        DeviceAttributeOverlay overlay = new DeviceAttributeOverlay(List.of(new DeviceAttributeOverlay.Rule(
                new DeviceAttributeOverlay.Selector.ByIndex(1), Map.of("class", "infer"), Set.of("spare"))));
        try (AllocationLedger ledger = AllocationLedger.open(
                        FakeNvml.gpus(2, MEMORY, 1), ConfigLoader.defaults().sharing(), state, Clock.systemUTC());
                LedgerNodeInventory inventory = new LedgerNodeInventory(
                        "node-7",
                        ledger,
                        () -> Map.copyOf(health),
                        overlay,
                        List::of,
                        LedgerNodeInventory::namespaceOf)) {
            NodeSnapshot empty = inventory.snapshot();
            assertThat(empty.nodeName()).isEqualTo("node-7");
            assertThat(empty.gpus()).hasSize(2).allSatisfy(g -> {
                assertThat(g.milliCapacity()).isEqualTo(1000);
                assertThat(g.milliAllocated()).isZero();
                assertThat(g.healthy()).isTrue();
            });
            assertThat(empty.gpus().get(1).deviceClass()).isEqualTo("infer");
            assertThat(empty.gpus().get(1).tags()).containsExactly("spare");

            AtomicInteger notified = new AtomicInteger();
            Subscription subscription = inventory.onChange(notified::incrementAndGet);
            ledger.allocate(ids(0, 0, 250));
            await().atMost(Duration.ofSeconds(5)).until(() -> notified.get() >= 1);
            NodeSnapshot allocated = inventory.snapshot();
            assertThat(allocated.generation()).isGreaterThan(empty.generation());
            GpuSnapshot gpu0 = allocated.gpus().get(0);
            assertThat(gpu0.milliAllocated()).isEqualTo(250);
            assertThat(gpu0.memoryAllocatedBytes()).isEqualTo(MEMORY / 4);
            assertThat(gpu0.tenants())
                    .as("owner not known until kubelet reports it")
                    .isEmpty();

            // kubelet reports the container: the tenant (its namespace, by default) becomes known.
            ledger.reconcile(List.of(new HeldDevices("team-a/trainer/main", ids(0, 0, 250))), Duration.ofHours(1));
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> inventory.snapshot().gpus().get(0).tenants().contains("team-a"));
            assertThat(inventory.snapshot().tenants()).containsExactly("team-a");

            health.put(FakeNvml.uuid(1), GpuHealth.unhealthy(FakeNvml.uuid(1), "XID 79"));
            inventory.changed();
            assertThat(inventory.snapshot().gpus().get(1).health()).isEqualTo(DeviceHealth.unhealthy("XID 79"));

            subscription.close();
            int before = notified.get();
            inventory.changed();
            assertThat(notified.get()).as("a closed subscription hears nothing").isEqualTo(before);
        }
    }

    @Test
    void tenantIsTheOwnersNamespace() {
        assertThat(LedgerNodeInventory.namespaceOf(new io.omai.agent.ledger.Allocation(
                        "a-1", List.of(), java.time.Instant.EPOCH, "team-b/pod/ctr")))
                .isEqualTo("team-b");
        assertThat(LedgerNodeInventory.namespaceOf(
                        new io.omai.agent.ledger.Allocation("a-2", List.of(), java.time.Instant.EPOCH, "")))
                .isEmpty();
    }
}
