package io.omai.agent.quota;

import static io.omai.agent.quota.shm.ShmLayout.USAGE_DEVICE;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_SLOT;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_SLOT_DEVICE;
import static io.omai.agent.quota.shm.ShmLayout.offset;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.DamagedRegionException;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.RegionFormatException;
import io.omai.agent.quota.shm.ShimLikeWriter;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.agent.quota.shm.UsageRegion;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a container can do to its own usage file (it is mounted read-write) must never stop the reaper for
 * the other allocations, nor make it free capacity: each attack is a {@link UsageProblem} for the attacker's
 * allocation, and the neighbour's dead process is still reclaimed in the same pass.
 */
class UsageFileTamperTest {
    private static final long NS = 4026531836L;
    private static final long GIB = 1L << 30;

    @TempDir
    Path dir;

    private AllocationFiles attacker;
    private AllocationFiles neighbour;
    private ShimLikeWriter attackerShim;
    private ShimLikeWriter neighbourShim;
    private final List<ProcStat> live = new ArrayList<>();
    private final List<String> problems = new ArrayList<>();
    private DeadProcessReaper reaper;

    @BeforeEach
    void setUp() throws IOException {
        attacker = create("attacker");
        neighbour = create("neighbour");
        attackerShim = new ShimLikeWriter(attacker.usage().path());
        neighbourShim = new ShimLikeWriter(neighbour.usage().path());
        reaper = new DeadProcessReaper(
                new ProcessTable() {
                    @Override
                    public Optional<ProcStat> read(int pid) {
                        return live.stream().filter(p -> p.pid() == pid).findFirst();
                    }

                    @Override
                    public List<ProcStat> all() {
                        return List.copyOf(live);
                    }

                    @Override
                    public long ownPidNamespaceInode() {
                        return NS;
                    }
                },
                () -> List.of(attacker, neighbour));
        reaper.onProblem((files, problem) ->
                problems.add(files.directory().getFileName() + " " + problem.kind() + " " + problem.detail()));
    }

    private AllocationFiles create(String name) throws IOException {
        return AllocationFiles.create(
                dir.resolve(name),
                new AllocationSpec(
                        "ns/" + name + "/c",
                        List.of(new DeviceQuota("GPU-" + name, 0, 20 * GIB, 500, ComputeMode.HARD_CAP)),
                        false,
                        100_000));
    }

    @AfterEach
    void tearDown() {
        attackerShim.close();
        neighbourShim.close();
        attacker.close();
        neighbour.close();
    }

    /** The neighbour holds a live process and a dead one; the dead one's bytes must come back every time. */
    private void neighbourHasADeadProcess() {
        int alive = neighbourShim.claim(4000, 100);
        neighbourShim.allocate(alive, 0, GIB);
        live.add(new ProcStat(4000, 4000, NS, 100, false));
        int dead = neighbourShim.claim(4001, 200);
        neighbourShim.allocate(dead, 0, 2 * GIB);
    }

    private void assertNeighbourReclaimed() {
        assertThat(neighbour.usage().read().devices().getFirst().bytesReserved())
                .as("the dead neighbour's bytes came back, the live one's stayed")
                .isEqualTo(GIB);
    }

    @Test
    void aUsageFileTruncatedToZeroIsTamperingAndTheNeighbourIsStillReaped() throws IOException {
        neighbourHasADeadProcess();
        truncate(attacker.usage().path(), 0);

        reaper.reapOnce(); // before: InternalError from the truncated mapping ended the pass (and the schedule)

        assertNeighbourReclaimed();
        assertThat(problems)
                .singleElement()
                .asString()
                .startsWith("attacker TAMPERED")
                .contains("0 bytes");
        assertThatThrownBy(() -> attacker.usage().read())
                .isInstanceOf(DamagedRegionException.class)
                .hasMessageContaining("expected " + UsageRegion.FILE_SIZE);
        reaper.reapOnce();
        assertThat(problems).as("reported once while it lasts").hasSize(1);
    }

    @Test
    void aUsageFileTruncatedToHalfIsTampering() throws IOException {
        neighbourHasADeadProcess();
        truncate(attacker.usage().path(), UsageRegion.FILE_SIZE / 2);

        reaper.reapOnce();

        assertNeighbourReclaimed();
        assertThat(problems)
                .singleElement()
                .asString()
                .startsWith("attacker TAMPERED")
                .contains(UsageRegion.FILE_SIZE / 2 + " bytes");
    }

    @Test
    void aZeroedMagicIsTampering() throws IOException {
        neighbourHasADeadProcess();
        putLong(attacker.usage().path(), 0, 0L);

        reaper.reapOnce();

        assertNeighbourReclaimed();
        assertThat(problems)
                .singleElement()
                .asString()
                .startsWith("attacker TAMPERED")
                .contains("magic is 0x0");
        assertThatThrownBy(() -> attacker.usage().verify())
                .isInstanceOf(RegionFormatException.class)
                .extracting(e -> ((RegionFormatException) e).problem())
                .isEqualTo(RegionFormatException.Problem.BAD_MAGIC);
    }

    @Test
    void aForgedDeadSlotOfTwoToTheSixtyThirdBytesFreesNothingThatLiveProcessesHold() throws IOException {
        int holder = attackerShim.claim(300, 10);
        attackerShim.allocate(holder, 0, 20 * GIB);
        live.add(new ProcStat(300, 300, NS, 10, false));
        int forged = attackerShim.claim(301, 20); // pid 301 does not exist: the reaper will take it for dead
        putLong(attacker.usage().path(), slotBytes(forged, 0), Long.MIN_VALUE); // 2^63

        reaper.reapOnce();

        assertThat(attacker.usage().read().devices().getFirst().bytesReserved())
                .as("before: the reclaim saturated the total to 0 and the container could allocate 20 GiB more")
                .isEqualTo(20 * GIB);
        assertThat(problems)
                .singleElement()
                .asString()
                .startsWith("attacker TAMPERED")
                .contains("its slots hold 9223372058329612288");
    }

    @Test
    void aForgedSlotCannotFreeMoreThanTheTotalHoldsBeyondTheOthers() throws IOException {
        int holder = attackerShim.claim(300, 10);
        attackerShim.allocate(holder, 0, 4 * GIB);
        int dead = attackerShim.claim(301, 20);
        attackerShim.allocate(dead, 0, GIB);
        live.add(new ProcStat(300, 300, NS, 10, false));
        UsageRegion usage = attacker.usage();

        // The reclaim itself bounds what it returns, whatever the reaper's checks said before.
        putLong(usage.path(), slotBytes(dead, 0), 100 * GIB);
        long released = usage.reclaim(dead, 301, 20);

        assertThat(released).isEqualTo(GIB);
        assertThat(usage.read().devices().getFirst().bytesReserved()).isEqualTo(4 * GIB);
    }

    @Test
    void aTotalZeroedWhileHoldingMemoryIsTampering() throws IOException {
        neighbourHasADeadProcess();
        int holder = attackerShim.claim(300, 10);
        attackerShim.allocate(holder, 0, 20 * GIB);
        live.add(new ProcStat(300, 300, NS, 10, false));
        putLong(attacker.usage().path(), total(0), 0L);

        reaper.reapOnce();

        assertNeighbourReclaimed();
        assertThat(problems)
                .singleElement()
                .asString()
                .startsWith("attacker TAMPERED")
                .contains("total bytes_reserved is 0 but its slots hold " + 20 * GIB);
    }

    @Test
    void everySlotTakenIsReported() {
        neighbourHasADeadProcess();
        for (int i = 0; i < ShmLayout.MAX_SLOTS; i++) {
            attackerShim.claim(10_000 + i, 1 + i);
            live.add(new ProcStat(10_000 + i, 10_000 + i, NS, 1 + i, false));
        }

        reaper.reapOnce();

        assertNeighbourReclaimed();
        assertThat(problems)
                .singleElement()
                .asString()
                .startsWith("attacker SLOTS_EXHAUSTED")
                .contains("all " + ShmLayout.MAX_SLOTS + " process slots are taken");
    }

    @Test
    void anHonestFileIsNeverReported() {
        neighbourHasADeadProcess();
        int holder = attackerShim.claim(300, 10);
        attackerShim.allocate(holder, 0, 3 * GIB);
        attackerShim.reserveOnly(0, GIB); // a reservation not yet committed to a slot: total above the slots
        live.add(new ProcStat(300, 300, NS, 10, false));

        reaper.reapOnce();
        reaper.reapOnce();

        assertThat(problems).isEmpty();
        assertThat(reaper.failingAllocations()).isEmpty();
    }

    @Test
    void aFileThatRecoversIsReportedAgainWhenTamperedAgain() throws IOException {
        putLong(attacker.usage().path(), 0, 0L);
        reaper.reapOnce();
        putLong(attacker.usage().path(), 0, ShmLayout.USAGE_MAGIC);
        reaper.reapOnce();
        putLong(attacker.usage().path(), 0, 0L);
        reaper.reapOnce();

        assertThat(problems).hasSize(2).allSatisfy(p -> assertThat(p).startsWith("attacker TAMPERED"));
        assertThat(Map.copyOf(reaper.failingAllocations())).isEmpty();
    }

    private static long total(int device) {
        return ShmLayout.USAGE_DEVICES_OFFSET
                + device * USAGE_DEVICE.byteSize()
                + offset(USAGE_DEVICE, "bytes_reserved");
    }

    private static long slotBytes(int slot, int device) {
        return ShmLayout.USAGE_SLOTS_OFFSET
                + slot * USAGE_SLOT.byteSize()
                + offset(USAGE_SLOT, "devices")
                + device * USAGE_SLOT_DEVICE.byteSize()
                + offset(USAGE_SLOT_DEVICE, "bytes_in_use");
    }

    static void putLong(Path file, long at, long value) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value), at);
        }
    }

    static void truncate(Path file, long size) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.truncate(size);
        }
    }
}
