package io.omai.agent.quota.shm;

import static io.omai.agent.quota.shm.ShmLayout.USAGE_HEADER;
import static io.omai.agent.quota.shm.ShmLayout.offset;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class UsageRegionTest {
    @TempDir
    Path dir;

    @Test
    void createdFileIsEmptyAndWritableByAnyContainerUser() throws IOException {
        Path file = dir.resolve("usage");
        try (UsageRegion usage = UsageRegion.create(file, 2)) {
            UsageSnapshot s = usage.read();
            assertThat(s.deviceCount()).isEqualTo(2);
            assertThat(s.devices())
                    .hasSize(2)
                    .allSatisfy(t -> assertThat(t.bytesReserved()).isZero());
            assertThat(s.slots()).isEmpty();
        }
        assertThat(Files.size(file)).isEqualTo(UsageRegion.FILE_SIZE);
        assertThat(Files.getPosixFilePermissions(file)).isEqualTo(PosixFilePermissions.fromString("rw-rw-rw-"));
    }

    @Test
    void reclaimReleasesADeadProcessBytesAndFreesItsSlot() throws IOException {
        Path file = dir.resolve("usage");
        try (UsageRegion usage = UsageRegion.create(file, 2);
                ShimLikeWriter shim = new ShimLikeWriter(file)) {
            int a = shim.claim(100, 5000);
            int b = shim.claim(200, 6000);
            shim.allocate(a, 0, 1000);
            shim.allocate(a, 1, 300);
            shim.allocate(b, 0, 50);

            UsageSnapshot before = usage.read();
            assertThat(before.slots()).extracting(UsageSnapshot.Slot::pid).containsExactly(100, 200);
            assertThat(before.slots().get(0).bytesInUse()).isEqualTo(1300);
            assertThat(before.devices().get(0).bytesReserved()).isEqualTo(1050);

            assertThat(usage.reclaim(a, 100, 4999))
                    .as("different start time: another process")
                    .isEqualTo(-1);
            assertThat(usage.reclaim(a, 100, 5000)).isEqualTo(1300);
            assertThat(usage.reclaim(a, 100, 5000))
                    .as("second reclaim is a no-op")
                    .isEqualTo(-1);

            UsageSnapshot after = usage.read();
            assertThat(after.slots()).extracting(UsageSnapshot.Slot::pid).containsExactly(200);
            assertThat(after.devices().get(0).bytesReserved()).isEqualTo(50);
            assertThat(after.devices().get(1).bytesReserved()).isZero();
            assertThat(after.reclaimedSlots()).isEqualTo(1);
            assertThat(after.reclaimedBytes()).isEqualTo(1300);

            assertThat(shim.claim(300, 7000))
                    .as("the freed slot is claimable again")
                    .isEqualTo(a);
        }
    }

    @Test
    void totalsSaturateAtZeroInsteadOfUnderflowing() throws IOException {
        Path file = dir.resolve("usage");
        try (UsageRegion usage = UsageRegion.create(file, 1);
                ShimLikeWriter shim = new ShimLikeWriter(file)) {
            int slot = shim.claim(100, 1);
            shim.allocate(slot, 0, 10);
            // The total lost 10 bytes somewhere (e.g. the shim freed them before the agent looked).
            shim.reserveOnly(0, -10);
            assertThat(usage.reclaim(slot, 100, 1))
                    .as("only what the total holds is released")
                    .isZero();
            assertThat(usage.read().devices().get(0).bytesReserved()).isZero();
        }
    }

    @Test
    void leakedTotalsAreResetOnlyWhenNoProcessIsLeft() throws IOException {
        Path file = dir.resolve("usage");
        try (UsageRegion usage = UsageRegion.create(file, 1);
                ShimLikeWriter shim = new ShimLikeWriter(file)) {
            int slot = shim.claim(100, 1);
            shim.allocate(slot, 0, 10);
            shim.reserveOnly(0, 4096);
            assertThat(usage.resetLeakedTotals())
                    .as("a live process may still commit")
                    .isZero();
            assertThat(usage.reclaim(slot, 100, 1)).isEqualTo(10);
            assertThat(usage.read().devices().get(0).bytesReserved()).isEqualTo(4096);
            assertThat(usage.resetLeakedTotals()).isEqualTo(4096);
            assertThat(usage.read().devices().get(0).bytesReserved()).isZero();
        }
    }

    @Test
    void hostPidIsRecordedOnlyForTheSameProcess() throws IOException {
        Path file = dir.resolve("usage");
        try (UsageRegion usage = UsageRegion.create(file, 1);
                ShimLikeWriter shim = new ShimLikeWriter(file)) {
            int slot = shim.claim(7, 1);
            usage.setHostPid(slot, 8, 4242);
            assertThat(usage.read().slots().get(0).hostPid()).isZero();
            usage.setHostPid(slot, 7, 4242);
            assertThat(usage.read().slots().get(0).hostPid()).isEqualTo(4242);
        }
    }

    @Test
    void corruptHeadersAreRefusedWithTheFieldNamed() throws IOException {
        Path file = dir.resolve("usage");
        UsageRegion.create(file, 1).close();
        ControlRegionTest.patchInt(file, offset(USAGE_HEADER, "slot_size"), 800);
        assertThatThrownBy(() -> UsageRegion.openReadOnly(file))
                .isInstanceOf(RegionFormatException.class)
                .hasMessageContaining("slot_size is 800, expected 832");

        UsageRegion.create(file, 1).close();
        ControlRegionTest.patchInt(file, offset(USAGE_HEADER, "slots_offset"), 64);
        assertThatThrownBy(() -> UsageRegion.openReadOnly(file))
                .hasMessageContaining("slots_offset is 64, expected 1088");

        UsageRegion.create(file, 1).close();
        ControlRegionTest.patchLong(file, 0, ShmLayout.CONTROL_MAGIC);
        assertThatThrownBy(() -> UsageRegion.open(file)).hasMessageContaining("not an OMAI usage file");

        UsageRegion.create(file, 1).close();
        ControlRegionTest.truncate(file, UsageRegion.FILE_SIZE - 1);
        assertThatThrownBy(() -> UsageRegion.open(file))
                .hasMessageContaining(
                        "usage file is " + (UsageRegion.FILE_SIZE - 1) + " bytes, expected " + UsageRegion.FILE_SIZE);
    }

    @Test
    void allocationFilesKeepControlAndUsageConsistent() throws IOException {
        Path alloc = dir.resolve("ns_pod_ctr");
        try (AllocationFiles files = AllocationFiles.create(alloc, ControlRegionTest.spec(1L << 30, 250))) {
            assertThat(files.usage().deviceCount()).isEqualTo(2);
        }
        UsageRegion.create(alloc.resolve(AllocationFiles.USAGE), 3).close();
        assertThatThrownBy(() -> AllocationFiles.openReadOnly(alloc))
                .isInstanceOf(RegionFormatException.class)
                .hasMessageContaining("device_count is 3, expected 2 as in");
        AllocationFiles.delete(alloc);
        assertThat(alloc).doesNotExist();
        assertThat(List.of(dir.toFile().list())).isEmpty();
    }
}
