package io.omai.agent.ledger;

import static io.omai.agent.ledger.LedgerFixtures.gpus;
import static io.omai.agent.ledger.LedgerFixtures.ids;
import static io.omai.agent.ledger.LedgerFixtures.sharing;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.quota.shm.AllocationFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The ledger records whom each allocation is for, keeps it in its checkpoint and still reads version 1 files. */
class AllocationClaimTest {
    private static final long GIB = 1L << 30;

    @TempDir
    Path state;

    private final AllocationClaim teamA = new AllocationClaim("uid-1", "ns-a", "trainer", "main", "team-a", 3 * GIB);

    @Test
    void theClaimAndItsMemoryQuotaSurviveARestart() throws Exception {
        Allocation made;
        try (AllocationLedger ledger = AllocationLedger.open(gpus(2), sharing(), state, Clock.systemUTC())) {
            made = ledger.allocate(ids(0, 0, 250), teamA);
            assertThat(made.owner()).isEqualTo("ns-a/trainer/main");
            assertThat(made.tenant()).isEqualTo("team-a");
            assertThat(ledger.flush(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(Files.readString(state.resolve(AllocationLedger.CHECKPOINT_FILE)))
                .contains("\"version\" : 2")
                .contains("\"tenant\" : \"team-a\"");
        try (AllocationLedger reopened = AllocationLedger.open(gpus(2), sharing(), state, Clock.systemUTC())) {
            Allocation read = reopened.allocation(made.id()).orElseThrow();
            assertThat(read.claim()).isEqualTo(teamA);
            assertThat(reopened.spec(read).devices().getFirst().memoryLimitBytes())
                    .isEqualTo(3 * GIB);
        }
        try (AllocationFiles files = AllocationFiles.open(
                state.resolve(AllocationLedger.ALLOCATIONS_DIR).resolve(made.id()))) {
            assertThat(files.control().read().devices().getFirst().memoryLimitBytes())
                    .isEqualTo(3 * GIB);
        }
    }

    @Test
    void aVersionOneCheckpointIsReadWithUnknownClaims() throws Exception {
        Allocation made;
        try (AllocationLedger ledger = AllocationLedger.open(gpus(1), sharing(), state, Clock.systemUTC())) {
            made = ledger.allocate(ids(0, 0, 100));
            assertThat(ledger.flush(Duration.ofSeconds(5))).isTrue();
        }
        // an entry without a claim is exactly what version 1 wrote, checksum included
        Path checkpoint = state.resolve(AllocationLedger.CHECKPOINT_FILE);
        String text = Files.readString(checkpoint);
        assertThat(text).doesNotContain("claim");
        Files.writeString(checkpoint, text.replace("\"version\" : 2", "\"version\" : 1"));

        try (AllocationLedger reopened = AllocationLedger.open(gpus(1), sharing(), state, Clock.systemUTC())) {
            Allocation read = reopened.allocation(made.id()).orElseThrow();
            assertThat(read.claim()).isEqualTo(AllocationClaim.UNKNOWN);
            assertThat(reopened.learnClaim(made.id(), teamA)).isTrue();
            assertThat(reopened.allocation(made.id()).orElseThrow().tenant()).isEqualTo("team-a");
            assertThat(reopened.learnClaim(made.id(), teamA))
                    .as("known already")
                    .isFalse();
        }
    }

    @Test
    void aRepeatedAllocateLearnsTheClaimOfAnAllocationMadeWithoutOne() throws Exception {
        try (AllocationLedger ledger = AllocationLedger.open(gpus(1), sharing(), state, Clock.systemUTC())) {
            Allocation unknown = ledger.allocate(ids(0, 0, 100));
            Allocation learned = ledger.allocate(ids(0, 0, 100), teamA);
            assertThat(learned.id()).isEqualTo(unknown.id());
            assertThat(learned.claim()).isEqualTo(teamA);
            assertThat(ledger.allocate(ids(0, 0, 100), AllocationClaim.UNKNOWN).claim())
                    .isEqualTo(teamA);
        }
    }
}
