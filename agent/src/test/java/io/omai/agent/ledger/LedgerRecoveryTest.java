package io.omai.agent.ledger;

import static io.omai.agent.ledger.LedgerFixtures.gpus;
import static io.omai.agent.ledger.LedgerFixtures.ids;
import static io.omai.agent.ledger.LedgerFixtures.sharing;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.quota.shm.AllocationFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What the ledger is after a crash and a restart: reconciliation by exact device sets, orphans, lost GPUs. */
class LedgerRecoveryTest {
    private static final Duration GRACE = Duration.ofSeconds(60);

    @TempDir
    Path root;

    private final AllocationLedgerTest.MutableClock clock =
            new AllocationLedgerTest.MutableClock(Instant.parse("2026-01-01T00:00:00Z"));
    private final List<AllocationLedger> opened = new ArrayList<>();

    private Path state() {
        return root.resolve("state");
    }

    /** Opens the ledger with {@code gpuCount} GPUs, closing (and so flushing) any opened before. */
    private AllocationLedger open(int gpuCount) throws Exception {
        closeAll();
        AllocationLedger ledger = AllocationLedger.open(gpus(gpuCount), sharing(), state(), clock);
        opened.add(ledger);
        return ledger;
    }

    @AfterEach
    void closeAll() {
        opened.forEach(AllocationLedger::close);
        opened.clear();
    }

    private Path checkpoint() {
        return state().resolve(AllocationLedger.CHECKPOINT_FILE);
    }

    private List<String> allocationDirectories() throws IOException {
        try (Stream<Path> entries = Files.list(state().resolve(AllocationLedger.ALLOCATIONS_DIR))) {
            return entries.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private static Object inode(Path file) throws IOException {
        return Files.readAttributes(file, java.nio.file.attribute.BasicFileAttributes.class)
                .fileKey();
    }

    @Test
    void afterTheOverlapRaceTheContainersOwnDirectoryIsTrackedAndTheStaleAllocationReleased() throws Exception {
        // X allocated and checkpointed, but kubelet never recorded it (its pod failed admission)
        AllocationLedger ledger = open(2);
        Allocation x = ledger.allocate(ids(0, 0, 300));
        assertThat(ledger.flush(Duration.ofSeconds(10))).isTrue();
        byte[] checkpointWithX = Files.readAllBytes(checkpoint());
        // Y overlaps X (kubelet considered X's IDs free); the agent is SIGKILLed right after answering, so Y's
        // checkpoint never reaches the disk
        Allocation y = ledger.allocate(ids(0, 200, 300));
        Path mounted = ledger.directory(y).resolve(AllocationFiles.CONTROL);
        Object mountedInode = inode(mounted);
        closeAll();
        Files.write(checkpoint(), checkpointWithX);
        clock.advance(Duration.ofSeconds(5));

        AllocationLedger restarted = open(2);
        ReconcileReport report = restarted.reconcile(List.of(new HeldDevices("ns/y/main", ids(0, 200, 300))), GRACE);

        assertThat(report.adopted()).extracting(Allocation::id).containsExactly(y.id());
        assertThat(report.released()).extracting(Allocation::id).containsExactly(x.id());
        assertThat(restarted.allocations()).singleElement().satisfies(a -> {
            assertThat(a.id()).isEqualTo(y.id());
            assertThat(a.owner()).isEqualTo("ns/y/main");
        });
        // the files Y's container mounted are the ones the ledger now tracks (same inode, not recreated)
        assertThat(inode(restarted.directory(restarted.allocations().getFirst()).resolve(AllocationFiles.CONTROL)))
                .isEqualTo(mountedInode);
        assertThat(allocationDirectories()).containsExactly(y.id());
    }

    @Test
    void aContainerHoldingPartOfAnAllocationFromBeforeTheRestartReleasesItAtOnce() throws Exception {
        Allocation x = open(2).allocate(ids(1, 0, 500));
        clock.advance(Duration.ofSeconds(1));
        AllocationLedger restarted = open(2);
        // PodResources shows another container holding a subset of X's IDs: X's own container is gone
        ReconcileReport report = restarted.reconcile(List.of(new HeldDevices("ns/z/main", ids(1, 0, 100))), GRACE);
        assertThat(report.released()).extracting(Allocation::id).containsExactly(x.id());
        assertThat(restarted.allocations()).singleElement().satisfies(a -> {
            assertThat(a.milli()).isEqualTo(100);
            assertThat(a.owner()).isEqualTo("ns/z/main");
        });
    }

    @Test
    void aListedContainerWhoseIdsOverlapAKeptAllocationIsNotAdoptedBesideIt() throws Exception {
        AllocationLedger ledger = open(2);
        // the app container got its finished init container's 250 IDs plus 250 free ones; the list shows both
        Allocation app = ledger.allocate(ids(0, 0, 500));
        clock.advance(Duration.ofSeconds(1));
        ReconcileReport report = ledger.reconcile(
                List.of(new HeldDevices("ns/p/init", ids(0, 0, 250)), new HeldDevices("ns/p/main", ids(0, 0, 500))),
                GRACE);

        assertThat(report.adopted()).isEmpty();
        assertThat(ledger.allocations()).singleElement().satisfies(a -> {
            assertThat(a.id()).isEqualTo(app.id());
            assertThat(a.owner()).isEqualTo("ns/p/main");
        });
        // one owner per ID: the GPU holds 500 milli, not 750
        assertThat(ledger.allocations().stream().mapToInt(Allocation::milli).sum())
                .isEqualTo(500);
        assertThat(allocationDirectories()).containsExactly(app.id());
    }

    @Test
    void anAllocationMadeAfterTheListWasTakenIsLeftToTheGracePeriod() throws Exception {
        AllocationLedger ledger = open(2);
        clock.advance(Duration.ofSeconds(1));
        // the list still shows a departed pod on IDs kubelet has just handed to a new container
        List<HeldDevices> stale = List.of(new HeldDevices("ns/departed/main", ids(0, 0, 200)));
        Allocation fresh = ledger.allocate(ids(0, 100, 200));
        ReconcileReport report = ledger.reconcile(stale, GRACE);
        assertThat(report.released()).isEmpty();
        assertThat(ledger.allocation(fresh.id())).isPresent();
        assertThat(ledger.directory(fresh)).isDirectory();
    }

    @Test
    void anAllocationMadeWhileASlowListWasInFlightIsNotReleased() throws Exception {
        AllocationLedger ledger = open(2);
        clock.advance(Duration.ofSeconds(1));
        Allocation[] made = new Allocation[1];
        ReconcileReport report = ledger.reconcileWith(
                () -> {
                    try {
                        made[0] = ledger.allocate(ids(0, 0, 10)); // answered while kubelet builds its list
                    } catch (LedgerException e) {
                        throw new AssertionError(e);
                    }
                    clock.advance(GRACE.plusSeconds(1)); // and the list takes longer than the grace period
                    return List.of();
                },
                GRACE);
        assertThat(report.released()).isEmpty();
        assertThat(ledger.allocation(made[0].id())).isPresent();
    }

    @Test
    void directoriesACrashLeftAreRemovedOnceTheGracePeriodHasPassedSinceStart() throws Exception {
        AllocationLedger ledger = open(2);
        Allocation kept = ledger.allocate(ids(0, 0, 100));
        assertThat(ledger.flush(Duration.ofSeconds(10))).isTrue();
        byte[] beforeOrphan = Files.readAllBytes(checkpoint());
        Allocation orphan = ledger.allocate(ids(1, 0, 100)); // answered, never recorded by kubelet, checkpoint lost
        closeAll();
        Files.write(checkpoint(), beforeOrphan);
        // a link planted in the agent's directory must be removed as a link, never followed
        Path sentinel = Files.createDirectories(root.resolve("outside"));
        Files.writeString(sentinel.resolve("keep"), "precious");
        Files.createSymbolicLink(state().resolve("allocations/a-0000000000000000"), sentinel);

        AllocationLedger restarted = open(2);
        List<HeldDevices> held = List.of(new HeldDevices("ns/kept/main", ids(0, 0, 100)));
        ReconcileReport early = restarted.reconcile(held, GRACE);
        assertThat(early.orphansRemoved()).isEmpty(); // a container kubelet has not shown yet may hold it
        assertThat(allocationDirectories()).contains(orphan.id());

        clock.advance(GRACE);
        ReconcileReport later = restarted.reconcile(held, GRACE);
        assertThat(later.orphansRemoved()).containsExactlyInAnyOrder(orphan.id(), "a-0000000000000000");
        assertThat(allocationDirectories()).containsExactly(kept.id());
        closeAll(); // the remover finishes what was discarded
        try (Stream<Path> left = Files.list(state().resolve(AllocationLedger.DISCARDED_DIR))) {
            assertThat(left).isEmpty();
        }
        assertThat(Files.readString(sentinel.resolve("keep"))).isEqualTo("precious");
    }

    @Test
    void anAllocationOnAGpuTheNodeNoLongerHasIsKeptNotServedAndReleasedWhenNobodyHoldsIt() throws Exception {
        AllocationLedger ledger = open(2);
        Allocation onLost = ledger.allocate(ids(1, 0, 250));
        closeAll();

        AllocationLedger narrowed = open(1); // GPU 1 lost (or tenancy.gpus narrowed)
        assertThat(narrowed.allocations()).isEmpty();
        assertThat(narrowed.allocationsOnMissingGpus())
                .extracting(Allocation::id)
                .containsExactly(onLost.id());
        Allocation other = narrowed.allocate(ids(0, 0, 100));
        ReconcileReport held = narrowed.reconcile(
                List.of(
                        new HeldDevices("ns/lost/main", ids(1, 0, 250)),
                        new HeldDevices("ns/other/main", ids(0, 0, 100))),
                GRACE);
        assertThat(held.released()).isEmpty();
        assertThat(narrowed.allocationsOnMissingGpus())
                .singleElement()
                .satisfies(a -> assertThat(a.owner()).isEqualTo("ns/lost/main"));

        AllocationLedger back = open(2); // the checkpoint kept it across the narrowed run
        assertThat(back.allocations()).extracting(Allocation::id).containsExactlyInAnyOrder(onLost.id(), other.id());

        AllocationLedger again = open(1);
        clock.advance(GRACE);
        ReconcileReport gone = again.reconcile(List.of(new HeldDevices("ns/other/main", ids(0, 0, 100))), GRACE);
        assertThat(gone.released()).extracting(Allocation::id).containsExactly(onLost.id());
        assertThat(again.allocationsOnMissingGpus()).isEmpty();
        assertThat(Files.exists(state().resolve("allocations").resolve(onLost.id()), LinkOption.NOFOLLOW_LINKS))
                .isFalse();
    }

    @Test
    void aReleaseDuringATakeoverLeavesTheFreshFilesTheAnswerNames() throws Exception {
        // the storm's sequence: an allocation nobody holds (its pod deleted, or never recorded by kubelet) ...
        AllocationLedger ledger = open(2);
        Allocation departed = ledger.allocate(ids(0, 0, 100));
        clock.advance(GRACE.plusSeconds(1));
        AllocationClaim newcomer = new AllocationClaim("uid-2", "ns", "newcomer", "main", "team-a", 0);
        try (AllocationLedger.Pending takeover = ledger.prepareTakeover(ids(0, 0, 100), newcomer)) {
            // ... whose exact IDs a new container receives: its fresh files are written, and before the commit a
            // reconcile releases the old record (nobody holds it, past the grace period)
            Path control = ledger.directory(departed).resolve(AllocationFiles.CONTROL);
            Object fresh = inode(control);
            ReconcileReport report = ledger.reconcile(List.of(), GRACE);
            assertThat(report.released()).extracting(Allocation::id).containsExactly(departed.id());
            Allocation committed = takeover.commit();

            // the answer names this control file: it must be the one the ledger tracks, and still there
            assertThat(committed.owner()).isEqualTo("ns/newcomer/main");
            assertThat(ledger.allocation(departed.id())).isPresent();
            assertThat(control).isRegularFile();
            assertThat(inode(control)).isEqualTo(fresh);
        }
        assertThat(allocationDirectories()).containsExactly(departed.id());
    }

    @Test
    void aTakeoverNotCommittedAfterItsRecordWasReleasedLeavesNoDirectory() throws Exception {
        AllocationLedger ledger = open(2);
        Allocation departed = ledger.allocate(ids(0, 0, 100));
        clock.advance(GRACE.plusSeconds(1));
        AllocationClaim newcomer = new AllocationClaim("uid-2", "ns", "newcomer", "main", "team-a", 0);
        try (AllocationLedger.Pending takeover = ledger.prepareTakeover(ids(0, 0, 100), newcomer)) {
            ledger.reconcile(List.of(), GRACE);
            assertThat(takeover.allocationId()).isEqualTo(departed.id()); // refused: never committed
        }
        assertThat(ledger.allocations()).isEmpty();
        assertThat(Files.exists(ledger.directory(departed), LinkOption.NOFOLLOW_LINKS))
                .isFalse();
    }
}
