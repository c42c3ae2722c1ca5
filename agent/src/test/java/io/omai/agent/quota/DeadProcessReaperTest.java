package io.omai.agent.quota;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.ShimLikeWriter;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DeadProcessReaperTest {
    private static final long NS = 4026531836L;

    @TempDir
    Path dir;

    private AllocationFiles files;
    private ShimLikeWriter shim;
    private final FakeProcesses processes = new FakeProcesses();
    private final AtomicLong clock = new AtomicLong(1_000_000_000L);
    private DeadProcessReaper reaper;

    @BeforeEach
    void setUp() throws IOException {
        files = AllocationFiles.create(
                dir.resolve("alloc"),
                new AllocationSpec(
                        "ns/pod/c",
                        List.of(
                                new DeviceQuota("GPU-a", 0, 1 << 30, 1000, ComputeMode.HARD_CAP),
                                new DeviceQuota("GPU-b", 1, 1 << 30, 1000, ComputeMode.HARD_CAP)),
                        false,
                        100_000));
        shim = new ShimLikeWriter(dir.resolve("alloc").resolve(AllocationFiles.USAGE));
        reaper = new DeadProcessReaper(processes, () -> List.of(files), clock::get);
    }

    @AfterEach
    void tearDown() {
        shim.close();
        files.close();
    }

    @Test
    void deadProcessesBytesComeBackAndLiveOnesStay() {
        int live = shim.claim(100, 5000);
        int dead = shim.claim(200, 6000);
        shim.allocate(live, 0, 1000);
        shim.allocate(dead, 0, 300);
        shim.allocate(dead, 1, 20);
        processes.add(new ProcStat(4100, 100, NS, 5000, false));

        DeadProcessReaper.Result r = reaper.reapOnce();

        assertThat(r.slotsReclaimed()).isEqualTo(1);
        assertThat(r.bytesReclaimed()).isEqualTo(320);
        UsageSnapshot after = files.usage().read();
        assertThat(after.slots()).extracting(UsageSnapshot.Slot::index).containsExactly(live);
        assertThat(after.devices().get(0).bytesReserved()).isEqualTo(1000);
        assertThat(after.devices().get(1).bytesReserved()).isZero();
        assertThat(reaper.reapOnce()).as("nothing more to do").isEqualTo(DeadProcessReaper.Result.NONE);
        assertThat(reaper.slotsReclaimedTotal())
                .as("omai_reaper_reclaims_total")
                .isEqualTo(1);
        assertThat(reaper.bytesReclaimedTotal()).isEqualTo(320);
    }

    @Test
    void theHostPidOfEachLiveSlotIsRecordedForTheComputeController() {
        int inContainer = shim.claim(7, 5000); // pid 7 in its own namespace, 4107 on the host
        int sameNamespace = shim.claim(4200, 6000);
        shim.claim(9, 7000); // gone: reclaimed, no host pid to record
        processes.add(new ProcStat(4107, 7, NS + 1, 5000, false));
        processes.add(new ProcStat(4200, 4200, NS, 6000, false));
        processes.add(new ProcStat(4300, 4300, NS, 1, false)); // nobody's

        reaper.reapOnce();

        assertThat(files.usage().read().slots())
                .extracting(UsageSnapshot.Slot::index, UsageSnapshot.Slot::hostPid)
                .containsExactlyInAnyOrder(
                        org.assertj.core.groups.Tuple.tuple(inContainer, 4107),
                        org.assertj.core.groups.Tuple.tuple(sameNamespace, 4200));
    }

    @Test
    void aReusedPidIsNotTheSameProcess() {
        int slot = shim.claim(100, 5000);
        shim.allocate(slot, 0, 64);
        processes.add(new ProcStat(100, 100, NS, 7777, false)); // same pid, started later

        assertThat(reaper.reapOnce().bytesReclaimed()).isEqualTo(64);
    }

    @Test
    void aZombieHoldsNoGpuMemory() {
        int slot = shim.claim(100, 5000);
        shim.allocate(slot, 0, 64);
        processes.add(new ProcStat(100, 100, NS, 5000, true));

        assertThat(reaper.reapOnce().slotsReclaimed()).isEqualTo(1);
    }

    @Test
    void leakedReservationsAreClearedOnceNoProcessIsLeft() {
        int slot = shim.claim(100, 5000);
        shim.allocate(slot, 0, 100);
        shim.reserveOnly(0, 40); // a process died between reserve and commit

        DeadProcessReaper.Result r = reaper.reapOnce();

        assertThat(r.bytesReclaimed()).isEqualTo(100);
        assertThat(r.leakedBytesReset()).isEqualTo(40);
        assertThat(files.usage().read().devices().get(0).bytesReserved()).isZero();
    }

    @Test
    void leakedReservationsStayWhileAProcessLives() {
        int slot = shim.claim(100, 5000);
        shim.allocate(slot, 0, 100);
        shim.reserveOnly(0, 40);
        processes.add(new ProcStat(100, 100, NS, 5000, false));

        assertThat(reaper.reapOnce()).isEqualTo(DeadProcessReaper.Result.NONE);
        assertThat(files.usage().read().devices().get(0).bytesReserved()).isEqualTo(140);
    }

    @Test
    void aHalfClaimedSlotGetsAGracePeriod() {
        int slot = shim.claim(100, 0); // pid written, identity not yet

        assertThat(reaper.reapOnce().slotsReclaimed()).as("just seen").isZero();
        clock.addAndGet(DeadProcessReaper.CLAIM_GRACE.toNanos() - 1);
        assertThat(reaper.reapOnce().slotsReclaimed())
                .as("within the grace period")
                .isZero();
        clock.addAndGet(1);
        assertThat(reaper.reapOnce().slotsReclaimed()).isEqualTo(1);
        assertThat(files.usage().read().slots()).noneMatch(s -> s.index() == slot);
    }

    @Test
    void aProcessThatCannotBeReadIsNotTakenForDead() {
        int slot = shim.claim(100, 5000);
        shim.allocate(slot, 0, 64);
        processes.unreadable = true;

        assertThat(reaper.reapOnce()).isEqualTo(DeadProcessReaper.Result.NONE);
        assertThat(files.usage().read().devices().get(0).bytesReserved()).isEqualTo(64);
        processes.unreadable = false;
        assertThat(reaper.reapOnce().bytesReclaimed())
                .as("readable again: it is gone")
                .isEqualTo(64);
    }

    @Test
    void aQuietAllocationIsNotReadInFullYetItsDeadProcessIsReclaimedOnTheNextPass() {
        int slot = shim.claim(100, 5000);
        shim.allocate(slot, 0, 1000);
        processes.add(new ProcStat(100, 100, NS, 5000, false));
        reaper.reapOnce();
        assertThat(reaper.fullReadsTotal()).isEqualTo(1);
        int readsBefore = processes.reads;

        for (int i = 0; i < 3; i++) {
            assertThat(reaper.reapOnce()).isEqualTo(DeadProcessReaper.Result.NONE);
        }
        assertThat(reaper.fullReadsTotal())
                .as("totals and the live process unchanged: only the quick check")
                .isEqualTo(1);
        assertThat(processes.reads - readsBefore)
                .as("the live process is still checked every pass")
                .isEqualTo(3);

        processes.remove(100);
        assertThat(reaper.reapOnce().bytesReclaimed())
                .as("killed: back on the very next pass")
                .isEqualTo(1000);
    }

    @Test
    void aChangedTotalBringsBackTheFullRead() {
        int slot = shim.claim(100, 5000);
        shim.allocate(slot, 0, 1000);
        processes.add(new ProcStat(100, 100, NS, 5000, false));
        reaper.reapOnce();
        reaper.reapOnce();

        int other = shim.claim(200, 6000); // dies right after allocating
        shim.allocate(other, 1, 64);

        assertThat(reaper.reapOnce().bytesReclaimed()).isEqualTo(64);
        assertThat(reaper.fullReadsTotal()).isEqualTo(2);
    }

    @Test
    void aPassThatReclaimedIsFollowedByAFullRead() {
        int first = shim.claim(100, 5000);
        shim.allocate(first, 0, 256);
        assertThat(reaper.reapOnce().bytesReclaimed()).isEqualTo(256);
        // The next process allocates what the dead one held: the totals are back to what the pass read first.
        int next = shim.claim(200, 6000);
        shim.allocate(next, 0, 256);

        assertThat(reaper.reapOnce().bytesReclaimed()).as("killed too").isEqualTo(256);
    }

    @Test
    void aSlotHiddenBehindUnchangedTotalsIsReclaimedAtTheNextFullRead() {
        int slot = shim.claim(100, 5000);
        shim.allocate(slot, 0, 1000);
        processes.add(new ProcStat(100, 100, NS, 5000, false));
        reaper.reapOnce();
        // A process that claims a slot and dies before allocating leaves the totals as they were (a container
        // can also forge them back): the slot waits for the periodic full read, no longer.
        int hidden = shim.claim(200, 6000);

        int reclaimed = 0;
        for (int pass = 0; pass < DeadProcessReaper.FULL_READ_EVERY; pass++) {
            reclaimed += reaper.reapOnce().slotsReclaimed();
        }

        assertThat(reclaimed).isEqualTo(1);
        assertThat(files.usage().read().slots()).noneMatch(s -> s.index() == hidden);
        assertThat(reaper.fullReadsTotal()).isEqualTo(2);
    }

    @Test
    void procStatParsingCopesWithHostileCommandNames() {
        String stat = "4242 (evil) (name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        String status = "Name:\tevil\nNSpid:\t4242\t17\nPPid:\t1\n";

        ProcStat p = LinuxProcessTable.parse(4242, stat, status, NS);

        assertThat(p).isEqualTo(new ProcStat(4242, 17, NS, 987654, false));
        assertThat(p.isLive(NS, 17, 987654)).isTrue();
        assertThat(p.isLive(NS, 4242, 987654))
                .as("slots hold the pid of the process's own namespace")
                .isFalse();
        assertThat(p.isLive(NS + 1, 17, 987654)).as("another namespace").isFalse();
        assertThat(p.isLive(0, 17, 987654))
                .as("namespace unknown: pid and start time decide")
                .isTrue();
        ProcStat veiled = LinuxProcessTable.parse(4242, stat, null, 0);
        assertThat(veiled.isLive(NS, 17, 987654))
                .as("status and ns/pid denied: it may be the owner")
                .isTrue();
        assertThat(veiled.isLive(NS, 17, 987653))
                .as("but not with another start time")
                .isFalse();
        assertThatThrownBy(() -> LinuxProcessTable.parse(1, "1 (x) S 1", status, NS))
                .hasMessageContaining("expected at least 22");
        assertThatThrownBy(() -> LinuxProcessTable.parseNsLink("mnt:[1]")).hasMessageContaining("pid:[inode]");
    }

    @Test
    void theRealProcTableFindsThisProcess() {
        LinuxProcessTable table = new LinuxProcessTable();
        int self = (int) ProcessHandle.current().pid();

        Optional<ProcStat> me = table.read(self);

        assertThat(me).isPresent();
        assertThat(me.get().pidNsInode())
                .isEqualTo(table.ownPidNamespaceInode())
                .isNotZero();
        assertThat(me.get().nsPid()).isEqualTo(self);
        assertThat(me.get().startTimeTicks()).isPositive();
        assertThat(me.get().zombie()).isFalse();
        assertThat(table.all()).extracting(ProcStat::pid).contains(self);
        assertThat(table.read(Integer.MAX_VALUE)).isEmpty();
    }

    /** A process table whose contents the test decides. */
    private static final class FakeProcesses implements ProcessTable {
        private final List<ProcStat> procs = new ArrayList<>();
        boolean unreadable;
        int reads;

        void add(ProcStat p) {
            procs.add(p);
        }

        void remove(int pid) {
            procs.removeIf(p -> p.pid() == pid);
        }

        @Override
        public Optional<ProcStat> read(int pid) {
            reads++;
            return procs.stream().filter(p -> p.pid() == pid).findFirst();
        }

        @Override
        public List<ProcStat> all() {
            if (unreadable) {
                throw new ProcessUnreadableException(
                        Path.of("/proc/4242"), new java.nio.file.AccessDeniedException("ns/pid"));
            }
            return List.copyOf(procs);
        }

        @Override
        public long ownPidNamespaceInode() {
            return NS;
        }
    }
}
