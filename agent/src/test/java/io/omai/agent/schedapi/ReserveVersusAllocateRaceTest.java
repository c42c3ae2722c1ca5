package io.omai.agent.schedapi;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.tenancy.AdmissionGate;
import io.omai.agent.tenancy.ContainerReservation;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.NodePods;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.agent.tenancy.ReservationException;
import io.omai.agent.tenancy.ReservationRequest;
import io.omai.placement.AntiAffinityPolicy;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A scheduler's Reserve and kubelet's Allocate of an unreserved pod race for the same GPU, wired as the agent
 * wires them (the book reads {@link LedgerNodeInventory#live}, the gate checks under the book's lock): in every
 * round at most one of them gets the capacity.
 */
class ReserveVersusAllocateRaceTest {
    private static final int ROUNDS = 300;

    @TempDir
    Path state;

    @Test
    void reserveAndAnUnreservedAllocateNeverBothWin() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try (AllocationLedger ledger = AllocationLedger.open(
                        FakeNvml.gpus(1, 16L << 30, 1), ConfigLoader.defaults().sharing(), state, Clock.systemUTC());
                LedgerNodeInventory inventory = new LedgerNodeInventory(
                        "node-r",
                        ledger,
                        Map::of,
                        new DeviceAttributeOverlay(List.of()),
                        List::of,
                        LedgerNodeInventory::namespaceOf)) {
            ReservationBook book = new ReservationBook(inventory::live, AntiAffinityPolicy.GPU, Clock.systemUTC());
            AdmissionGate gate =
                    new AdmissionGate("node-r", ledger, book, NodePods.NONE, new GpuWithdrawals(), Duration.ZERO);
            String gpu = FakeNvml.uuid(0);
            int bothWon = 0;
            int allocateWon = 0;
            int reserveWon = 0;
            for (int round = 0; round < ROUNDS; round++) {
                // a different 600 IDs each round, so every Allocate is a new allocation
                int first = (round % 2) * 400;
                List<String> ids = IntStream.range(first, first + 600)
                        .mapToObj(slot -> new MilliGpuId(gpu, slot).id())
                        .toList();
                ReservationRequest request = new ReservationRequest(
                        "key-" + round,
                        "pod-" + round,
                        "team-s",
                        // 500, not 600: an Allocate of 600 is then not this reservation's pod being admitted
                        List.of(new ContainerReservation("main", List.of(gpu), 500, 0, List.of())),
                        Duration.ofMinutes(5));
                CyclicBarrier start = new CyclicBarrier(2);
                Future<Boolean> allocated = pool.submit(() -> {
                    start.await();
                    try {
                        gate.allocate(ids);
                        return true;
                    } catch (io.omai.agent.tenancy.AdmissionRefusal refused) {
                        return false;
                    }
                });
                Future<Boolean> reserved = pool.submit(() -> {
                    start.await();
                    try {
                        book.reserve(request);
                        return true;
                    } catch (ReservationException.InsufficientCapacity refused) {
                        return false;
                    }
                });
                boolean a = allocated.get(10, TimeUnit.SECONDS);
                boolean r = reserved.get(10, TimeUnit.SECONDS);
                bothWon += a && r ? 1 : 0;
                allocateWon += a && !r ? 1 : 0;
                reserveWon += r && !a ? 1 : 0;
                // clean up for the next round: the reservation goes, kubelet says nothing is held
                book.releaseByKey("key-" + round);
                ledger.reconcile(List.of(), Duration.ZERO);
                assertThat(ledger.allocations()).isEmpty();
            }
            assertThat(bothWon)
                    .as(
                            "rounds where a reservation of 500 and an allocation of 600 both got one 1000-milli GPU (allocate won %d, reserve won %d)",
                            allocateWon, reserveWon)
                    .isZero();
            assertThat(allocateWon + reserveWon).isEqualTo(ROUNDS);
        } finally {
            pool.shutdownNow();
        }
    }
}
