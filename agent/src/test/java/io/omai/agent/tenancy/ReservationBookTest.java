package io.omai.agent.tenancy;

import static io.omai.agent.tenancy.FakeNodeCapacity.GIB;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.placement.AntiAffinityPolicy;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class ReservationBookTest {
    private final MutableClock clock = new MutableClock(Instant.parse("2026-11-29T08:00:00Z"));
    private final AtomicReference<FakeNodeCapacity> node = new AtomicReference<>(FakeNodeCapacity.idleGpus(2));

    private ReservationBook book(AntiAffinityPolicy policy) {
        return new ReservationBook(node::get, policy, clock);
    }

    private static ReservationRequest share(String key, String pod, String tenant, String gpu, int milli) {
        return new ReservationRequest(
                key,
                pod,
                tenant,
                List.of(new ContainerReservation("main", List.of(gpu), milli, 0, List.of())),
                Duration.ofSeconds(30));
    }

    @Test
    void reserve_countsAgainstCapacityAtOnce() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 600));

        assertThatThrownBy(() -> book.reserve(share("k2", "pod-2", "team-a", "GPU-0", 500)))
                .isInstanceOf(ReservationException.InsufficientCapacity.class)
                .hasMessageContaining("GPU-0")
                .hasMessageContaining("500 milli requested, 400 free");
        assertThat(book.reserve(share("k3", "pod-3", "team-a", "GPU-0", 400)).podUid())
                .isEqualTo("pod-3");
    }

    @Test
    void reserve_resolvesDefaultMemoryProportionallyToTheShare() {
        Reservation reservation = book(AntiAffinityPolicy.GPU).reserve(share("k1", "pod-1", "team-a", "GPU-0", 250));

        assertThat(reservation.containers().getFirst().memoryBytes()).isEqualTo(20 * GIB);
        assertThat(reservation.expiresAt()).isEqualTo(clock.instant().plusSeconds(30));
    }

    @Test
    void reserve_countsLedgerAllocations() {
        node.set(node.get().with(node.get().gpu("GPU-0").allocated("team-a", 900, 10 * GIB)));
        ReservationBook book = book(AntiAffinityPolicy.GPU);

        assertThatThrownBy(() -> book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 200)))
                .isInstanceOf(ReservationException.InsufficientCapacity.class)
                .hasMessageContaining("200 milli requested, 100 free");
    }

    @Test
    void reserve_wholeGpuNeedsAnUntouchedGpu() {
        ReservationBook book = book(AntiAffinityPolicy.NONE);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 100));
        var whole = new ReservationRequest(
                "k2",
                "pod-2",
                "team-a",
                List.of(new ContainerReservation("train", List.of("GPU-0", "GPU-1"), 2000, 0, List.of())),
                Duration.ofSeconds(30));

        assertThatThrownBy(() -> book.reserve(whole))
                .isInstanceOf(ReservationException.InsufficientCapacity.class)
                .hasMessageContaining("GPU-0: a whole GPU was requested but 100 milli");
    }

    @Test
    void reserve_sameKeySameContentReturnsTheSameReservationRenewed() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        Reservation first = book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 500));
        clock.advance(Duration.ofSeconds(5));

        Reservation again = book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 500));

        assertThat(again.request()).isEqualTo(first.request());
        assertThat(again.containers()).isEqualTo(first.containers());
        assertThat(again.createdAt()).isEqualTo(first.createdAt());
        assertThat(again.expiresAt()).isEqualTo(first.expiresAt().plusSeconds(5));
        assertThat(book.outstanding()).containsExactly(again);
    }

    @Test
    void reserve_sameKeyDifferentContentFailsNamingTheDifference() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 500));

        assertThatThrownBy(() -> book.reserve(share("k1", "pod-1", "team-b", "GPU-0", 500)))
                .isInstanceOf(ReservationException.IdempotencyConflict.class)
                .hasMessageContaining("idempotency key 'k1'")
                .hasMessageContaining("tenant 'team-a' vs 'team-b'");
        assertThat(book.outstanding()).hasSize(1);
    }

    @Test
    void reserve_secondReservationForAPodIsRefused() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 500));

        assertThatThrownBy(() -> book.reserve(share("k2", "pod-1", "team-a", "GPU-1", 500)))
                .isInstanceOf(ReservationException.PodAlreadyReserved.class)
                .hasMessageContaining("pod pod-1 already holds reservation 'k1'");
    }

    @Test
    void reserve_unknownAndUnhealthyDevicesAreNamed() {
        node.set(node.get().with(node.get().gpu("GPU-1").unhealthy()));
        ReservationBook book = book(AntiAffinityPolicy.GPU);

        assertThatThrownBy(() -> book.reserve(share("k1", "pod-1", "team-a", "GPU-9", 500)))
                .isInstanceOf(ReservationException.UnknownDevice.class)
                .hasMessageContaining("containers[0] ('main'): node node-a has no GPU GPU-9");
        assertThatThrownBy(() -> book.reserve(share("k2", "pod-2", "team-a", "GPU-1", 500)))
                .isInstanceOf(ReservationException.UnhealthyDevice.class)
                .hasMessageContaining("GPU-1 is unhealthy");
        var vf = new ReservationRequest(
                "k3",
                "pod-3",
                "team-a",
                List.of(new ContainerReservation("main", List.of(), 0, 0, List.of("0000:99:00.1"))),
                Duration.ofSeconds(30));
        assertThatThrownBy(() -> book.reserve(vf))
                .isInstanceOf(ReservationException.UnknownDevice.class)
                .hasMessageContaining("has no VF 0000:99:00.1");
        assertThat(book.outstanding()).isEmpty();
    }

    @Test
    void reserve_vfCanBeHeldOnlyOnce() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        var first = new ReservationRequest(
                "k1",
                "pod-1",
                "team-a",
                List.of(new ContainerReservation("main", List.of(), 0, 0, List.of("0000:3b:00.2"))),
                Duration.ofSeconds(30));
        book.reserve(first);
        var second = new ReservationRequest(
                "k2",
                "pod-2",
                "team-a",
                List.of(new ContainerReservation("main", List.of(), 0, 0, List.of("0000:3b:00.2"))),
                Duration.ofSeconds(30));

        assertThatThrownBy(() -> book.reserve(second))
                .isInstanceOf(ReservationException.InsufficientCapacity.class)
                .hasMessageContaining("VF 0000:3b:00.2 is allocated or reserved");
    }

    @Test
    void gpuPolicy_refusesASecondTenantOnAGpuNamingBoth() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 300));

        assertThatThrownBy(() -> book.reserve(share("k2", "pod-2", "team-b", "GPU-0", 300)))
                .isInstanceOf(ReservationException.AntiAffinityViolation.class)
                .hasMessageContaining("tenant 'team-b' may not share GPU GPU-0 with tenant 'team-a'");
        // another size: a same-size one would wait for k1's admission (next test)
        assertThat(book.reserve(share("k3", "pod-3", "team-b", "GPU-1", 400)).tenant())
                .isEqualTo("team-b");
    }

    @Test
    void aSecondTenantsSameSizeReservationWaitsUntilTheFirstIsAdmittedOrReleased() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 300));

        // two tenants' 300s pending at once could not be told apart at Allocate (it names no pod)
        assertThatThrownBy(() -> book.reserve(share("k2", "pod-2", "team-b", "GPU-1", 300)))
                .isInstanceOf(ReservationException.AdmissionWouldBeAmbiguous.class)
                .hasMessageContaining("tenant team-b")
                .hasMessageContaining("reservation 'k1'")
                .hasMessageContaining("retry after it is admitted");
        assertThat(book.outstanding()).hasSize(1);
        // one tenant's pods need no telling apart
        assertThat(book.reserve(share("k3", "pod-3", "team-a", "GPU-0", 300)).tenant())
                .isEqualTo("team-a");

        book.releaseByKey("k1");
        book.releaseByKey("k3");
        assertThat(book.reserve(share("k2", "pod-2", "team-b", "GPU-1", 300)).tenant())
                .isEqualTo("team-b");
    }

    @Test
    void withoutTenantSeparationSameSizeReservationsOfTwoTenantsAreHeld() {
        ReservationBook book = book(AntiAffinityPolicy.NONE);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 300));

        assertThat(book.reserve(share("k2", "pod-2", "team-b", "GPU-1", 300)).tenant())
                .isEqualTo("team-b");
    }

    @Test
    void gpuPolicy_seesTenantsOfLedgerAllocations() {
        node.set(node.get().with(node.get().gpu("GPU-0").allocated("team-a", 100, GIB)));

        assertThatThrownBy(() -> book(AntiAffinityPolicy.GPU).reserve(share("k1", "pod-1", "team-b", "GPU-0", 100)))
                .isInstanceOf(ReservationException.AntiAffinityViolation.class)
                .hasMessageContaining("with tenant 'team-a'");
    }

    @Test
    void nodePolicy_refusesASecondTenantAnywhereOnTheNode() {
        ReservationBook book = book(AntiAffinityPolicy.NODE);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 300));

        assertThatThrownBy(() -> book.reserve(share("k2", "pod-2", "team-b", "GPU-1", 300)))
                .isInstanceOf(ReservationException.AntiAffinityViolation.class)
                .hasMessageContaining("tenant 'team-b' may not use node node-a while tenant 'team-a'");
        assertThat(book.reserve(share("k3", "pod-3", "team-a", "GPU-1", 300)).tenant())
                .isEqualTo("team-a");
    }

    @Test
    void nonePolicy_letsTenantsShare() {
        ReservationBook book = book(AntiAffinityPolicy.NONE);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 300));

        assertThat(book.reserve(share("k2", "pod-2", "team-b", "GPU-0", 300)).tenant())
                .isEqualTo("team-b");
    }

    @Test
    void lease_endsExactlyAtExpiryAndFreesCapacity() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        var changes = new AtomicInteger();
        book.onChange(changes::incrementAndGet);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 1000 - 1));

        clock.advance(Duration.ofSeconds(29));
        assertThat(book.outstanding()).hasSize(1);
        clock.advance(Duration.ofSeconds(1));
        assertThat(book.outstanding()).isEmpty();
        assertThat(book.forPod("pod-1")).isEmpty();

        assertThat(book.expireDue()).extracting(Reservation::podUid).containsExactly("pod-1");
        assertThat(changes).hasValue(2);
        assertThat(book.reserve(share("k2", "pod-2", "team-b", "GPU-0", 999)).tenant())
                .isEqualTo("team-b");
    }

    @Test
    void lease_endedDuringARefusedReserveStillReachesListeners() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 500));
        var changes = new AtomicInteger();
        book.onChange(changes::incrementAndGet);
        clock.advance(Duration.ofSeconds(30));

        assertThatThrownBy(() -> book.reserve(share("k2", "pod-2", "team-a", "GPU-9", 500)))
                .isInstanceOf(ReservationException.UnknownDevice.class);

        assertThat(changes).hasValue(1);
        assertThat(book.expireDue()).isEmpty();
    }

    @Test
    void lease_expiredKeyCanBeReusedForANewReservation() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        Reservation first = book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 500));
        clock.advance(Duration.ofSeconds(31));

        Reservation second = book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 500));

        assertThat(second.createdAt()).isAfter(first.createdAt());
    }

    @Test
    void release_byPodOrKeyFreesCapacityAndReportsUnknown() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 1000 - 1));
        book.reserve(share("k2", "pod-2", "team-a", "GPU-1", 1000 - 1));

        assertThat(book.releaseByPod("pod-1")).map(Reservation::idempotencyKey).contains("k1");
        assertThat(book.releaseByKey("k2")).map(Reservation::podUid).contains("pod-2");
        assertThat(book.releaseByKey("k2")).isEmpty();
        assertThat(book.releaseByPod("pod-9")).isEmpty();
        assertThat(book.outstanding()).isEmpty();
    }

    @Test
    void consume_runsTheLedgerWriteBeforeDroppingTheReservation() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 600));
        var seenInside = new AtomicReference<List<Reservation>>();

        Reservation consumed = book.consume("pod-1", reservation -> {
            seenInside.set(book.outstanding());
            node.set(node.get().with(node.get().gpu("GPU-0").allocated("team-a", 600, 48 * GIB)));
        });

        assertThat(consumed.podUid()).isEqualTo("pod-1");
        assertThat(seenInside.get()).extracting(Reservation::podUid).containsExactly("pod-1");
        assertThat(book.outstanding()).isEmpty();
        assertThatThrownBy(() -> book.reserve(share("k2", "pod-2", "team-a", "GPU-0", 500)))
                .isInstanceOf(ReservationException.InsufficientCapacity.class);
        assertThatThrownBy(() -> book.consume("pod-1", reservation -> {}))
                .isInstanceOf(ReservationException.NoSuchReservation.class);
    }

    @Test
    void consume_failingLedgerWriteKeepsTheReservation() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 600));

        assertThatThrownBy(() -> book.consume("pod-1", reservation -> {
                    throw new IllegalStateException("checkpoint write failed");
                }))
                .hasMessage("checkpoint write failed");
        assertThat(book.forPod("pod-1")).isPresent();
    }

    @Test
    void atomically_letsTheLedgerRefuseCapacityThatReservationsHold() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 700));

        String shortfall = book.atomically(reservations -> NodeUsage.of(node.get(), reservations)
                .gpu("GPU-0")
                .orElseThrow()
                .capacityShortfall(500, GIB));

        assertThat(shortfall).isEqualTo("500 milli requested, 300 free");
    }

    @Test
    void atomically_dropsExpiredReservationsFirst() {
        ReservationBook book = book(AntiAffinityPolicy.GPU);
        book.reserve(share("k1", "pod-1", "team-a", "GPU-0", 700));
        clock.advance(Duration.ofSeconds(30));

        int live = book.atomically(List::size);

        assertThat(live).isZero();
    }

    @Test
    void race_exactlyOneOf16ThreadsGetsTheLastGpu() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(16);
        try {
            for (int round = 0; round < 50; round++) {
                node.set(FakeNodeCapacity.idleGpus(1));
                ReservationBook book = book(AntiAffinityPolicy.NONE);
                var start = new CountDownLatch(1);
                var outcomes = new ArrayList<Future<Boolean>>();
                for (int t = 0; t < 16; t++) {
                    String id = round + "-" + t;
                    outcomes.add(pool.submit(() -> {
                        start.await();
                        try {
                            book.reserve(new ReservationRequest(
                                    "key-" + id,
                                    "pod-" + id,
                                    "tenant-" + id,
                                    List.of(new ContainerReservation("main", List.of("GPU-0"), 1000, 0, List.of())),
                                    Duration.ofSeconds(30)));
                            return true;
                        } catch (ReservationException.InsufficientCapacity lost) {
                            return false;
                        }
                    }));
                }
                start.countDown();
                int winners = 0;
                for (Future<Boolean> outcome : outcomes) {
                    winners += outcome.get() ? 1 : 0;
                }
                assertThat(winners).as("winners in round %d", round).isEqualTo(1);
                assertThat(book.outstanding()).hasSize(1);
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
