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
    void allocationsAreListedPerContainerPerGpuWithTheirVfsAndPcie() throws Exception {
        try (AllocationLedger ledger = AllocationLedger.open(
                        FakeNvml.gpus(3, MEMORY, 1), ConfigLoader.defaults().sharing(), state, Clock.systemUTC());
                LedgerNodeInventory inventory = new LedgerNodeInventory(
                        "node-7",
                        ledger,
                        Map::of,
                        new DeviceAttributeOverlay(List.of()),
                        List::of,
                        io.omai.agent.tenancy.LedgerNodeCapacity::tenantOf,
                        () -> List.of(
                                new ContainerHolding(
                                        "", "team-a", "infer", "main", "", "", 0, 0, List.of("0000:3b:00.2")),
                                new ContainerHolding(
                                        "", "team-c", "rdma", "main", "", "", 0, 0, List.of("0000:3b:00.3"))),
                        uuid -> uuid.equals(FakeNvml.uuid(0))
                                ? new PciePlace("0000:17:00.0", "0000:16:00.0")
                                : PciePlace.UNKNOWN)) {
            ledger.allocate(
                    ids(0, 0, 250),
                    new io.omai.agent.ledger.AllocationClaim("uid-1", "team-a", "infer", "main", "team-a", 0));
            List<String> whole = new java.util.ArrayList<>(ids(1, 0, 1000));
            whole.addAll(ids(2, 0, 1000));
            ledger.allocate(
                    whole, new io.omai.agent.ledger.AllocationClaim("uid-2", "team-b", "train", "main", "team-b", 0));
            inventory.changed();

            NodeSnapshot snapshot = inventory.snapshot();

            assertThat(snapshot.allocations())
                    .containsExactly(
                            new ContainerHolding(
                                    "uid-1",
                                    "team-a",
                                    "infer",
                                    "main",
                                    "team-a",
                                    FakeNvml.uuid(0),
                                    250,
                                    MEMORY / 4,
                                    List.of("0000:3b:00.2")),
                            new ContainerHolding(
                                    "uid-2",
                                    "team-b",
                                    "train",
                                    "main",
                                    "team-b",
                                    FakeNvml.uuid(1),
                                    1000,
                                    MEMORY,
                                    List.of()),
                            new ContainerHolding(
                                    "uid-2",
                                    "team-b",
                                    "train",
                                    "main",
                                    "team-b",
                                    FakeNvml.uuid(2),
                                    1000,
                                    MEMORY,
                                    List.of()),
                            new ContainerHolding("", "team-c", "rdma", "main", "", "", 0, 0, List.of("0000:3b:00.3")));
            // the entries add up to the GPUs' totals
            for (GpuSnapshot gpu : snapshot.gpus()) {
                assertThat(snapshot.allocations().stream()
                                .filter(a -> a.gpuUuid().equals(gpu.uuid()))
                                .mapToInt(ContainerHolding::milli)
                                .sum())
                        .isEqualTo(gpu.milliAllocated());
            }
            assertThat(snapshot.gpus().get(0).pciAddress()).isEqualTo("0000:17:00.0");
            assertThat(snapshot.gpus().get(0).pcieSwitch()).isEqualTo("0000:16:00.0");
            assertThat(snapshot.gpus().get(1).pcieSwitch()).isEmpty();
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
