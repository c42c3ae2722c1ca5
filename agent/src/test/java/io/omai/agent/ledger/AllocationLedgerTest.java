package io.omai.agent.ledger;

import static io.omai.agent.ledger.LedgerFixtures.GPU_MEMORY;
import static io.omai.agent.ledger.LedgerFixtures.allIds;
import static io.omai.agent.ledger.LedgerFixtures.gpus;
import static io.omai.agent.ledger.LedgerFixtures.id;
import static io.omai.agent.ledger.LedgerFixtures.ids;
import static io.omai.agent.ledger.LedgerFixtures.sharing;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.config.AgentConfig;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.ShmLayout;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AllocationLedgerTest {
    @TempDir
    Path state;

    private final MutableClock clock = new MutableClock(Instant.parse("2026-01-01T00:00:00Z"));

    /** A clock tests move by hand, so grace periods need no sleeping. */
    static final class MutableClock extends Clock {
        private Instant now;

        MutableClock(Instant now) {
            this.now = now;
        }

        void advance(Duration by) {
            now = now.plus(by);
        }

        @Override
        public ZoneOffset getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(java.time.ZoneId zone) {
            return this;
        }

        @Override
        public Instant instant() {
            return now;
        }
    }

    private final List<AllocationLedger> opened = new ArrayList<>();

    /** Opens the ledger of {@code state}, closing (and so flushing) any opened before, as an agent restart does. */
    private AllocationLedger open() throws Exception {
        closeAll();
        AllocationLedger ledger = AllocationLedger.open(gpus(2), sharing(), state, clock);
        opened.add(ledger);
        return ledger;
    }

    @org.junit.jupiter.api.AfterEach
    void closeAll() {
        opened.forEach(AllocationLedger::close);
        opened.clear();
    }

    private byte[] checkpointBytes() throws IOException {
        for (AllocationLedger ledger : opened) {
            try {
                assertThat(ledger.flush(Duration.ofSeconds(10))).isTrue();
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
        Path file = state.resolve(AllocationLedger.CHECKPOINT_FILE);
        return Files.exists(file) ? Files.readAllBytes(file) : new byte[0];
    }

    private ControlSnapshot control(AllocationLedger ledger, Allocation allocation) throws IOException {
        try (AllocationFiles files = AllocationFiles.openReadOnly(ledger.directory(allocation))) {
            return files.control().read();
        }
    }

    @Test
    void allocateWritesControlFileWithProportionalMemoryAndTheShareAsComputeQuota() throws Exception {
        AllocationLedger ledger = open();
        Allocation allocation = ledger.allocate(ids(1, 0, 250));
        assertThat(allocation.milliPerGpu()).containsExactly(java.util.Map.entry(FakeNvml.uuid(1), 250));
        ControlSnapshot control = control(ledger, allocation);
        assertThat(control.devices()).hasSize(1);
        assertThat(control.devices().getFirst().uuid()).isEqualTo(FakeNvml.uuid(1));
        assertThat(control.devices().getFirst().memoryLimitBytes()).isEqualTo(GPU_MEMORY / 4);
        assertThat(control.devices().getFirst().computeQuotaMilli()).isEqualTo(250);
        assertThat(control.devices().getFirst().mode()).isEqualTo(ComputeMode.HARD_CAP);
        assertThat(Files.isRegularFile(ledger.directory(allocation).resolve(AllocationFiles.USAGE)))
                .isTrue();
    }

    @Test
    void unlimitedMemoryPolicyWritesNoMemoryLimit() throws Exception {
        AgentConfig.Sharing unlimited = new AgentConfig.Sharing(
                AgentConfig.MemoryPolicy.UNLIMITED,
                AgentConfig.ComputePolicy.WORK_CONSERVING,
                true,
                100_000,
                false,
                "nvidia.com/gpu");
        closeAll();
        AllocationLedger ledger = AllocationLedger.open(gpus(1), unlimited, state, clock);
        opened.add(ledger);
        Allocation allocation = ledger.allocate(ids(0, 0, 500));
        assertThat(control(ledger, allocation).devices().getFirst().memoryLimitBytes())
                .isEqualTo(ShmLayout.MEMORY_UNLIMITED);
        assertThat(control(ledger, allocation).devices().getFirst().mode()).isEqualTo(ComputeMode.WORK_CONSERVING);
    }

    @Test
    void wholeGpusAreOneAllocationWithAFullQuotaOnEach() throws Exception {
        AllocationLedger ledger = open();
        Allocation allocation = ledger.allocate(allIds(0, 1));
        assertThat(allocation.milli()).isEqualTo(2000);
        ControlSnapshot control = control(ledger, allocation);
        assertThat(control.devices()).extracting(d -> d.computeQuotaMilli()).containsExactly(1000, 1000);
        assertThat(control.devices()).extracting(d -> d.memoryLimitBytes()).containsExactly(GPU_MEMORY, GPU_MEMORY);
    }

    @Test
    void repeatedAllocateOfTheSameIdsIsTheSameAllocation() throws Exception {
        AllocationLedger ledger = open();
        List<String> request = ids(0, 10, 300);
        Allocation first = ledger.allocate(request);
        byte[] checkpoint = checkpointBytes();
        List<String> shuffled = new ArrayList<>(request);
        java.util.Collections.reverse(shuffled);
        Allocation second = ledger.allocate(shuffled);
        assertThat(second).isEqualTo(first);
        assertThat(ledger.allocations()).containsExactly(first);
        assertThat(checkpointBytes()).isEqualTo(checkpoint);
    }

    @Test
    void repeatedAllocateRecreatesFilesThatWentMissing() throws Exception {
        AllocationLedger ledger = open();
        Allocation allocation = ledger.allocate(ids(0, 0, 100));
        AllocationFiles.delete(ledger.directory(allocation));
        ledger.allocate(ids(0, 0, 100));
        assertThat(control(ledger, allocation).devices().getFirst().computeQuotaMilli())
                .isEqualTo(100);
    }

    @Test
    void bogusRequestsAreRefusedWithAClearMessageAndChangeNothing() throws Exception {
        AllocationLedger ledger = open();
        Allocation kept = ledger.allocate(ids(0, 0, 100));
        byte[] before = checkpointBytes();
        List<String> dirsBefore;
        try (Stream<Path> dirs = Files.list(state.resolve(AllocationLedger.ALLOCATIONS_DIR))) {
            dirsBefore = dirs.map(Path::toString).sorted().toList();
        }
        List<String> spanning = new ArrayList<>(ids(0, 500, 100));
        spanning.addAll(ids(1, 0, 100));
        record Case(List<String> ids, String message) {}
        List<Case> cases = List.of(
                new Case(List.of(), "no device IDs"),
                new Case(List.of("GPU-nope-m1"), "names GPU GPU-nope, which this node does not have"),
                new Case(List.of("garbage"), "is not of the form <gpu-uuid>-m<slot>"),
                new Case(List.of(FakeNvml.uuid(0) + "-m1000"), "expected 0..999"),
                new Case(List.of(id(0, 600), id(0, 600)), "appears twice"),
                new Case(spanning, "span GPUs"));
        for (Case bad : cases) {
            assertThatThrownBy(() -> ledger.allocate(bad.ids()))
                    .as("%s", bad.ids().size() > 3 ? bad.ids().size() + " ids" : bad.ids())
                    .isInstanceOf(LedgerException.InvalidRequest.class)
                    .hasMessageContaining(bad.message());
        }
        assertThat(ledger.allocations()).containsExactly(kept);
        assertThat(checkpointBytes()).isEqualTo(before);
        try (Stream<Path> dirs = Files.list(state.resolve(AllocationLedger.ALLOCATIONS_DIR))) {
            assertThat(dirs.map(Path::toString).sorted().toList()).isEqualTo(dirsBefore);
        }
    }

    @Test
    void preparedFilesAreRecordedOnlyAtCommitAndRemovedWhenNotCommitted() throws Exception {
        AllocationLedger ledger = open();
        Path directory;
        try (AllocationLedger.Pending pending = ledger.prepare(ids(0, 0, 300), AllocationClaim.UNKNOWN)) {
            directory = state.resolve(AllocationLedger.ALLOCATIONS_DIR).resolve(pending.allocationId());
            assertThat(directory.resolve("control")).exists();
            assertThat(ledger.allocations()).isEmpty();
            assertThatThrownBy(() -> ledger.prepare(ids(0, 0, 300), AllocationClaim.UNKNOWN))
                    .isInstanceOf(LedgerException.InvalidRequest.class)
                    .hasMessageContaining("in progress");
        }
        assertThat(directory).doesNotExist();
        assertThat(ledger.allocations()).isEmpty();

        try (AllocationLedger.Pending pending = ledger.prepare(ids(0, 0, 300), AllocationClaim.UNKNOWN)) {
            Allocation made = pending.commit();
            assertThat(ledger.allocations()).containsExactly(made);
        }
        assertThat(directory.resolve("control")).exists();
    }

    @Test
    void idsHandedOutAgainReleaseTheStaleAllocation() throws Exception {
        AllocationLedger ledger = open();
        ledger.keepDisplacedFilesFor(java.time.Duration.ZERO); // the agent keeps them for the grace period
        Allocation old = ledger.allocate(ids(0, 0, 300));
        Allocation replacement = ledger.allocate(ids(0, 200, 300));
        assertThat(ledger.allocations()).containsExactly(replacement);
        assertThat(ledger.directory(old)).doesNotExist();
    }

    @Test
    void reopeningGivesTheIdenticalLedger() throws Exception {
        AllocationLedger ledger = open();
        ledger.allocate(ids(0, 0, 250));
        ledger.allocate(ids(1, 0, 1000));
        List<Allocation> before = ledger.allocations();
        AllocationLedger reopened = open();
        assertThat(reopened.allocations()).isEqualTo(before);
    }

    @Test
    void aCorruptCheckpointIsKeptAsideAndTheLedgerStartsEmpty() throws Exception {
        open().allocate(ids(0, 0, 250));
        closeAll();
        Path checkpoint = state.resolve(AllocationLedger.CHECKPOINT_FILE);
        String tampered = Files.readString(checkpoint).replace("-m249", "-m999");
        Files.writeString(checkpoint, tampered);
        assertThat(open().allocations()).isEmpty(); // to be rebuilt from PodResources
        try (Stream<Path> files = Files.list(state)) {
            Path aside = files.filter(f -> f.getFileName().toString().startsWith("ledger.json.corrupt-"))
                    .findFirst()
                    .orElseThrow();
            assertThat(Files.readString(aside)).isEqualTo(tampered);
        }
    }

    @Test
    void aCheckpointThatIsNotJsonIsKeptAside() throws Exception {
        Files.writeString(state.resolve(AllocationLedger.CHECKPOINT_FILE), "{ not json");
        closeAll();
        assertThat(open().allocations()).isEmpty();
        try (Stream<Path> files = Files.list(state)) {
            assertThat(files.map(f -> f.getFileName().toString())).anyMatch(n -> n.startsWith("ledger.json.corrupt-"));
        }
    }

    @Test
    void reconcileReleasesWhatNoContainerHoldsOnceTheGracePeriodIsOver() throws Exception {
        AllocationLedger ledger = open();
        Allocation gone = ledger.allocate(ids(0, 0, 250));
        Allocation held = ledger.allocate(ids(1, 0, 500));
        List<HeldDevices> podResources = List.of(new HeldDevices("team-a/train-0/main", ids(1, 0, 500)));

        ReconcileReport early = ledger.reconcile(podResources, Duration.ofSeconds(60));
        assertThat(early.released()).isEmpty();
        assertThat(early.ownersLearned()).extracting(Allocation::owner).containsExactly("team-a/train-0/main");

        clock.advance(Duration.ofSeconds(61));
        ReconcileReport later = ledger.reconcile(podResources, Duration.ofSeconds(60));
        assertThat(later.released()).extracting(Allocation::id).containsExactly(gone.id());
        assertThat(ledger.allocations()).extracting(Allocation::id).containsExactly(held.id());
        assertThat(ledger.directory(gone)).doesNotExist();
        assertThat(open().allocations()).extracting(Allocation::owner).containsExactly("team-a/train-0/main");
    }

    @Test
    void reconcileAdoptsWhatContainersHoldButTheLedgerDoesNotKnow() throws Exception {
        AllocationLedger ledger = open();
        ReconcileReport report = ledger.reconcile(
                List.of(
                        new HeldDevices("ns/p/c", ids(0, 0, 400)),
                        new HeldDevices("ns/bad/c", List.of(id(0, 900), id(1, 900)))),
                Duration.ZERO);
        assertThat(report.adopted()).singleElement().satisfies(a -> {
            assertThat(a.owner()).isEqualTo("ns/p/c");
            assertThat(a.milli()).isEqualTo(400);
        });
        Allocation adopted = ledger.allocations().getFirst();
        assertThat(control(ledger, adopted).devices().getFirst().computeQuotaMilli())
                .isEqualTo(400);
    }

    @Test
    void sharesUseTheSpareFilesAndStillGetTheirOwnLimits() throws Exception {
        AllocationLedger ledger = open();
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> ledger.sparesReady() == 4);
        List<Allocation> made = new ArrayList<>();
        for (int i = 0; i < 8; i++) { // more than the spares kept, so both paths run
            made.add(ledger.allocate(ids(i % 2, (i / 2) * 100, 50 + i)));
        }
        for (Allocation allocation : made) {
            ControlSnapshot control = control(ledger, allocation);
            assertThat(control.label()).isEqualTo("allocation " + allocation.id());
            assertThat(control.devices()).singleElement().satisfies(device -> {
                assertThat(device.uuid()).isEqualTo(allocation.gpuUuids().getFirst());
                assertThat(device.computeQuotaMilli()).isEqualTo(allocation.milli());
                assertThat(device.memoryLimitBytes()).isEqualTo(GPU_MEMORY * allocation.milli() / 1000);
            });
        }
    }
}
