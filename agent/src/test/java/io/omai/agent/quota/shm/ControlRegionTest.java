package io.omai.agent.quota.shm;

import static io.omai.agent.quota.shm.ShmLayout.CONTROL_HEADER;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ControlRegionTest {
    @TempDir
    Path dir;

    static AllocationSpec spec(long limit, int quota) {
        return new AllocationSpec(
                "team-a/trainer-0/main",
                List.of(
                        new DeviceQuota(
                                "GPU-11111111-2222-3333-4444-555555555555", 0, limit, quota, ComputeMode.HARD_CAP),
                        new DeviceQuota(
                                "GPU-66666666-7777-8888-9999-000000000000",
                                3,
                                limit,
                                quota,
                                ComputeMode.WORK_CONSERVING)),
                true,
                100_000);
    }

    @Test
    void createThenReadRoundTrips() throws IOException {
        Path file = dir.resolve("control");
        try (ControlRegion region = ControlRegion.create(file, spec(4L << 30, 300))) {
            ControlSnapshot s = region.read();
            assertThat(s.abiVersion()).isEqualTo(ShmLayout.ABI_VERSION);
            assertThat(s.epoch()).isZero();
            assertThat(s.heartbeatNs()).isZero();
            assertThat(s.label()).isEqualTo("team-a/trainer-0/main");
            assertThat(s.computeEnforced()).isTrue();
            assertThat(s.computePeriodUs()).isEqualTo(100_000);
            assertThat(s.createdNs()).isPositive();
            assertThat(s.devices())
                    .extracting(ControlSnapshot.Device::uuid)
                    .containsExactly(
                            "GPU-11111111-2222-3333-4444-555555555555", "GPU-66666666-7777-8888-9999-000000000000");
            assertThat(s.devices().get(1).hostIndex()).isEqualTo(3);
            assertThat(s.devices().get(1).mode()).isEqualTo(ComputeMode.WORK_CONSERVING);
            assertThat(s.devices()).allSatisfy(d -> {
                assertThat(d.memoryLimitBytes()).isEqualTo(4L << 30);
                assertThat(d.computeQuotaMilli()).isEqualTo(300);
                assertThat(d.tokenGrantNs()).isZero();
            });
        }
        assertThat(Files.size(file)).isEqualTo(ControlRegion.FILE_SIZE);
        assertThat(Files.getPosixFilePermissions(file)).isEqualTo(PosixFilePermissions.fromString("rw-r--r--"));
        assertThat(dir.toFile().list()).as("no temporary file left behind").containsExactly("control");
    }

    @Test
    void updateBumpsTheEpochByTwoAndKeepsGrantsOfKeptDevices() throws IOException {
        try (ControlRegion region = ControlRegion.create(dir.resolve("control"), spec(1L << 30, 300))) {
            region.addTokenGrant(0, 5_000_000);
            region.update(spec(2L << 30, 500));
            ControlSnapshot s = region.read();
            assertThat(s.epoch()).isEqualTo(2);
            assertThat(s.devices().get(0).memoryLimitBytes()).isEqualTo(2L << 30);
            assertThat(s.devices().get(0).computeQuotaMilli()).isEqualTo(500);
            assertThat(s.devices().get(0).tokenGrantNs()).isEqualTo(5_000_000);
        }
    }

    @Test
    void grantsOnlyGrowAndHeartbeatIsPublished() throws IOException {
        try (ControlRegion region = ControlRegion.create(dir.resolve("control"), spec(1L << 30, 300))) {
            assertThat(region.addTokenGrant(1, 30_000_000)).isEqualTo(30_000_000);
            assertThat(region.addTokenGrant(1, 30_000_000)).isEqualTo(60_000_000);
            assertThat(region.tokenGrant(1)).isEqualTo(60_000_000);
            assertThatThrownBy(() -> region.addTokenGrant(1, -1)).hasMessageContaining("grants only grow");
            assertThat(region.read().devices().get(1).launchCostNs()).isZero();
            region.setLaunchCost(1, 250_000);
            assertThat(region.read().devices().get(1).launchCostNs()).isEqualTo(250_000);
            assertThatThrownBy(() -> region.setLaunchCost(1, 0)).hasMessageContaining("expected > 0");
            assertThatThrownBy(() -> region.tokenGrant(16)).hasMessageContaining("expected 0..15");
            long before = MonotonicClock.nanos();
            region.heartbeat();
            assertThat(region.read().heartbeatNs()).isBetween(before, MonotonicClock.nanos());
        }
    }

    @Test
    void readOnlyRegionRefusesWrites() throws IOException {
        Path file = dir.resolve("control");
        ControlRegion.create(file, spec(1L << 30, 300)).close();
        try (ControlRegion region = ControlRegion.openReadOnly(file)) {
            assertThat(region.read().devices()).hasSize(2);
            assertThatThrownBy(() -> region.heartbeat(1))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("read-only");
            assertThatThrownBy(() -> region.update(spec(1, 1))).hasMessageContaining("read-only");
        }
    }

    @Test
    void missingFileNamesThePath() {
        Path file = dir.resolve("absent/control");
        assertThatThrownBy(() -> ControlRegion.open(file))
                .isInstanceOf(NoSuchFileException.class)
                .hasMessageContaining(file.toString())
                .hasMessageContaining("control file does not exist");
    }

    @Test
    void wrongMagicIsRefused() throws IOException {
        Path file = created();
        patchLong(file, 0, 0x1234L);
        assertRefused(
                file,
                RegionFormatException.Problem.BAD_MAGIC,
                "magic is 0x0000000000001234, expected 0x314c544349414d4f (\"OMAICTL1\")");
    }

    @Test
    void wrongVersionIsRefused() throws IOException {
        Path file = created();
        patchInt(file, ShmLayout.offset(CONTROL_HEADER, "abi_version"), 7);
        assertRefused(
                file,
                RegionFormatException.Problem.UNSUPPORTED_VERSION,
                "ABI version is 7, this agent speaks version 1");
    }

    @Test
    void wrongRecordSizeIsRefused() throws IOException {
        Path file = created();
        patchInt(file, ShmLayout.offset(CONTROL_HEADER, "device_record_size"), 80);
        assertRefused(file, RegionFormatException.Problem.BAD_FIELD, "device_record_size is 80, expected 128");
    }

    @Test
    void deviceCountBeyondTheAbiIsRefused() throws IOException {
        Path file = created();
        patchInt(file, ShmLayout.offset(CONTROL_HEADER, "device_count"), 17);
        assertRefused(file, RegionFormatException.Problem.BAD_FIELD, "device_count is 17, expected 0..16");
    }

    @Test
    void fileShorterThanItsHeaderIsRefused() throws IOException {
        Path file = created();
        truncate(file, 100);
        assertRefused(
                file, RegionFormatException.Problem.TRUNCATED, "control file is 100 bytes, expected at least 192");
    }

    @Test
    void fileCutInsideItsDeviceRecordsIsRefused() throws IOException {
        Path file = created();
        truncate(file, 192 + 128 + 10);
        assertRefused(
                file,
                RegionFormatException.Problem.TRUNCATED,
                "control file is 330 bytes, expected at least 448 for 2 device records");
    }

    @Test
    void emptyFileIsRefusedAsTruncated() throws IOException {
        Path file = dir.resolve("control");
        Files.createFile(file);
        assertRefused(file, RegionFormatException.Problem.TRUNCATED, "control file is 0 bytes");
    }

    @Test
    void anUpdateLeftHalfDoneIsReportedToReadersAndRepairedByTheNextOwner() throws IOException {
        Path file = created();
        patchLong(file, ShmLayout.offset(CONTROL_HEADER, "epoch"), 5);
        try (ControlRegion reader = ControlRegion.openReadOnly(file)) {
            assertThatThrownBy(reader::read)
                    .isInstanceOf(RegionFormatException.class)
                    .hasMessageContaining("epoch stayed odd (5)")
                    .extracting(e -> ((RegionFormatException) e).problem())
                    .isEqualTo(RegionFormatException.Problem.TORN_UPDATE);
        }
        try (ControlRegion owner = ControlRegion.open(file)) {
            assertThat(owner.repairTornUpdate()).isTrue();
            assertThat(owner.read().epoch()).isEqualTo(6);
        }
    }

    /**
     * Issue #13: every writable open closed an odd epoch, so a second writer (omai set) opening the file while the
     * agent was mid-update let readers take a half-written spec as whole. Opening changes nothing now.
     */
    @Test
    void openingForWritingLeavesAnUpdateInProgressAlone() throws IOException {
        Path file = created();
        patchLong(file, ShmLayout.offset(CONTROL_HEADER, "epoch"), 7); // another writer is mid-update
        try (ControlRegion second = ControlRegion.open(file)) {
            assertThatThrownBy(second::read)
                    .isInstanceOf(RegionFormatException.class)
                    .hasMessageContaining("epoch stayed odd (7)");
        }
    }

    /** Readers racing a writer never see a mix of two updates. */
    @Test
    void seqlockReadersSeeOnlyWholeUpdates() throws Exception {
        Path file = dir.resolve("control");
        try (ControlRegion writer = ControlRegion.create(file, spec(1000, 1));
                ControlRegion reader = ControlRegion.openReadOnly(file)) {
            AtomicBoolean stop = new AtomicBoolean();
            AtomicReference<String> torn = new AtomicReference<>();
            AtomicInteger reads = new AtomicInteger();
            Thread readerThread = Thread.ofPlatform().start(() -> {
                while (!stop.get() && torn.get() == null) {
                    try {
                        ControlSnapshot s = reader.read();
                        long limit = s.devices().get(0).memoryLimitBytes();
                        for (ControlSnapshot.Device d : s.devices()) {
                            if (d.memoryLimitBytes() != limit || d.computeQuotaMilli() != limit % 1000 + 1) {
                                torn.set("epoch " + s.epoch() + ": " + s.devices());
                            }
                        }
                        reads.incrementAndGet();
                    } catch (RegionFormatException e) {
                        torn.set(e.getMessage());
                    }
                }
            });
            for (int i = 1; i <= 20_000 && torn.get() == null; i++) {
                writer.update(spec(1000 + i, (1000 + i) % 1000 + 1));
            }
            stop.set(true);
            readerThread.join();
            assertThat(torn.get()).isNull();
            assertThat(reads.get()).isPositive();
        }
    }

    private Path created() throws IOException {
        Path file = dir.resolve("control");
        ControlRegion.create(file, spec(1L << 30, 300)).close();
        return file;
    }

    private static void assertRefused(Path file, RegionFormatException.Problem problem, String message) {
        for (boolean writable : new boolean[] {true, false}) {
            assertThatThrownBy(() -> (writable ? ControlRegion.open(file) : ControlRegion.openReadOnly(file)).close())
                    .isInstanceOf(RegionFormatException.class)
                    .hasMessageStartingWith(file.toString())
                    .hasMessageContaining(message)
                    .extracting(e -> ((RegionFormatException) e).problem())
                    .isEqualTo(problem);
        }
    }

    static void patchLong(Path file, long offset, long value) throws IOException {
        patch(
                file,
                offset,
                ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value));
    }

    static void patchInt(Path file, long offset, int value) throws IOException {
        patch(
                file,
                offset,
                ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, value));
    }

    private static void patch(Path file, long offset, ByteBuffer bytes) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(bytes, offset);
        }
    }

    static void truncate(Path file, long size) throws IOException {
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(size);
        }
    }
}
