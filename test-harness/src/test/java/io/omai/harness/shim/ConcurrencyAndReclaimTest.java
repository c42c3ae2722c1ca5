package io.omai.harness.shim;

import static io.omai.harness.shim.ShimFixture.MiB;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.omai.agent.quota.DeadProcessReaper;
import io.omai.agent.quota.LinuxProcessTable;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.simulator.sim.SimNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Processes of one container share one quota: racing never exceeds it, and the dead give theirs back. */
class ConcurrencyAndReclaimTest {
    private static final long LIMIT = 64 * MiB;

    @TempDir
    Path tmp;

    @Test
    void fourRacingProcessesGetExactlyTheLimitEveryTime() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            // 100 reps of 4 processes grabbing 1 MiB chunks until refused, all holding at once.
            SimNode.Run run = f.run("omai-shim-race", "4", "100", Long.toString(MiB), Long.toString(LIMIT));

            SimNode.Result summary = run.first("race-summary");
            assertThat(summary.get("status")).as(run.stdout() + run.stderr()).isEqualTo("OK");
            assertThat(summary.getLong("min_chunks")).isEqualTo(64);
            assertThat(summary.getLong("max_chunks")).isEqualTo(64);
            assertThat(run.exitCode()).isZero();
            assertThat(f.usage().devices().get(0).bytesPeak())
                    .as("the total never went above the limit")
                    .isEqualTo(LIMIT);
            assertThat(f.reserved(0)).isZero();
            assertThat(f.usage().slots()).isEmpty();
        }
    }

    @Test
    void fourProcessesOfFourThreadsEachGetExactlyTheLimitEveryTime() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            // Threads of one process race on its allocation table and its slot claim, processes on the total.
            SimNode.Run run = f.run("omai-shim-race", "4", "50", Long.toString(MiB), Long.toString(LIMIT), "4");

            SimNode.Result summary = run.first("race-summary");
            assertThat(summary.get("status")).as(run.stdout() + run.stderr()).isEqualTo("OK");
            assertThat(summary.getLong("max_chunks")).isEqualTo(64);
            assertThat(f.usage().devices().get(0).bytesPeak()).isEqualTo(LIMIT);
            assertThat(f.reserved(0))
                    .as("every free from every thread gave its bytes back once")
                    .isZero();
        }
    }

    @Test
    void aKilledProcessesMemoryIsReclaimedByTheAgent() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT);
                DeadProcessReaper reaper = new DeadProcessReaper(new LinuxProcessTable(), () -> List.of(f.files))) {
            SimNode.Started holder =
                    f.start("omai-workload", "alloc", "alloc", Long.toString(48 * MiB), "sleep", "120");
            assertThat(holder.awaitResult("alloc", Duration.ofSeconds(30)).status())
                    .isEqualTo("CUDA_SUCCESS");
            assertThat(f.reserved(0)).isEqualTo(48 * MiB);
            assertThat(reaper.reapOnce().slotsReclaimed())
                    .as("alive: nothing to reclaim")
                    .isZero();

            holder.kill();
            reaper.start(DeadProcessReaper.DEFAULT_PERIOD);

            await().atMost(Duration.ofSeconds(2))
                    .pollInterval(Duration.ofMillis(50))
                    .untilAsserted(() -> assertThat(f.reserved(0)).isZero());
            assertThat(f.usage().slots()).isEmpty();
            assertThat(f.usage().reclaimedBytes()).isEqualTo(48 * MiB);
            SimNode.Run after = f.run("omai-workload", "alloc", "alloc", Long.toString(LIMIT));
            assertThat(after.first("alloc").status())
                    .as("the whole quota is usable again")
                    .isEqualTo("CUDA_SUCCESS");
        }
    }

    @Test
    void processesKilledInTheMiddleOfAllocatingLeaveNothingBehind() throws Exception {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT);
                DeadProcessReaper reaper = new DeadProcessReaper(new LinuxProcessTable(), () -> List.of(f.files))) {
            for (int i = 0; i < 5; i++) {
                // A tight cuMemAlloc/cuMemFree loop, killed at whatever instruction it is at.
                SimNode.Started busy = f.start("omai-shim-bench", "alloc", "1000000000");
                await().atMost(Duration.ofSeconds(30))
                        .until(() -> f.usage().slots().stream()
                                .anyMatch(s -> s.pid() == (int) busy.pid() && s.state() == ShmLayout.SLOT_ACTIVE));
                Thread.sleep(20L * i);
                busy.kill();
                reaper.reapOnce();
                assertThat(f.usage().slots()).as("kill %d", i).isEmpty();
                assertThat(f.reserved(0))
                        .as("kill %d: nothing over-counted once no process is left", i)
                        .isZero();
            }
        }
    }

    @Test
    void aProcessThatExecsKeepsOneSlotAndItsBytesUntilItExits() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            // Allocates 8 MiB, then execs itself (same pid and start time, a new image) and allocates again.
            SimNode.Run run = f.run("omai-shim-bench", "exec-after-alloc", Long.toString(8 * MiB));

            assertThat(run.exitCode()).as(run.stdout() + run.stderr()).isZero();
            assertThat(f.usage().devices().get(0).bytesPeak())
                    .as("the new image took over the old slot with its 8 MiB still counted (over, never under)")
                    .isGreaterThan(8 * MiB);
            assertThat(f.usage().slots())
                    .as("one slot, released at exit, none leaked")
                    .isEmpty();
            assertThat(f.reserved(0)).isZero();
        }
    }

    @Test
    void aForkedChildClaimsItsOwnSlotAndIsReapedOnItsOwn() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT);
                DeadProcessReaper reaper = new DeadProcessReaper(new LinuxProcessTable(), () -> List.of(f.files))) {
            SimNode.Started parent = f.start(
                    "omai-workload",
                    "alloc",
                    "alloc",
                    Long.toString(16 * MiB),
                    "fork-alloc",
                    Long.toString(8 * MiB),
                    "sleep",
                    "120");
            SimNode.Result fork = parent.awaitResult("fork-alloc", Duration.ofSeconds(30));
            assertThat(fork.status()).isEqualTo("CUDA_SUCCESS");

            reaper.reapOnce(); // the child _exit()ed holding 8 MiB: only its slot goes
            assertThat(f.usage().slots()).extracting(s -> s.pid()).containsExactly((int) parent.pid());
            assertThat(f.reserved(0)).isEqualTo(16 * MiB);
            parent.kill();
        }
    }
}
