package io.omai.agent.quota.shm;

import static io.omai.agent.quota.shm.ShmLayout.CONTROL_HEADER;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Modes of an allocation directory and its files, and the one-writer rule of its control file. */
class AllocationFilesTest {
    private static final AllocationSpec SPEC = new AllocationSpec(
            "ns/pod/c", List.of(new DeviceQuota("GPU-a", 0, 4L << 30, 250, ComputeMode.HARD_CAP)), true, 100_000);

    @TempDir
    Path root;

    /**
     * Issue #13: the directory was 0755 with a 0666 usage file in it, so any host user could write any tenant's
     * usage. The directory keeps host users out (0700); the file stays 0666 for container processes of any uid,
     * which reach it through their own bind mount and never through the directory.
     */
    @Test
    void onlyTheAgentCanReachAnAllocationsFilesOnTheHost() throws IOException {
        Path directory = root.resolve("a-1");
        try (AllocationFiles files = AllocationFiles.create(directory, SPEC)) {
            assertThat(files.control().read().devices()).hasSize(1);
        }
        assertThat(Files.getPosixFilePermissions(directory)).isEqualTo(PosixFilePermissions.fromString("rwx------"));
        assertThat(Files.getPosixFilePermissions(directory.resolve(AllocationFiles.USAGE)))
                .isEqualTo(PosixFilePermissions.fromString("rw-rw-rw-"));
        assertThat(Files.getPosixFilePermissions(directory.resolve(AllocationFiles.CONTROL)))
                .isEqualTo(PosixFilePermissions.fromString("rw-r--r--"));
    }

    @Test
    void theWriterRepairsAnUpdateADeadWriterLeftHalfDoneAndHoldsOthersOff() throws IOException {
        Path directory = root.resolve("a-2");
        AllocationFiles.create(directory, SPEC).close();
        long epochAt = ShmLayout.offset(CONTROL_HEADER, "epoch");
        try (FileChannel channel =
                FileChannel.open(directory.resolve(AllocationFiles.CONTROL), StandardOpenOption.WRITE)) {
            channel.write(ByteBuffer.allocate(8).order(ByteOrder.nativeOrder()).putLong(0, 9), epochAt);
        }
        try (AllocationFiles writer = AllocationFiles.openAsWriter(directory)) {
            assertThat(writer.control().read().epoch()).isEqualTo(10);
            assertThatThrownBy(() -> AllocationFiles.openAsWriter(directory))
                    .isInstanceOf(ControlWriterLock.HeldException.class)
                    .hasMessageContaining("pid " + ProcessHandle.current().pid());
            assertThat(Files.getPosixFilePermissions(directory.resolve(ControlWriterLock.FILE)))
                    .isEqualTo(PosixFilePermissions.fromString("rw-------"));
        }
        try (AllocationFiles next = AllocationFiles.openAsWriter(directory)) {
            assertThat(next.control().read().epoch()).as("released on close").isEqualTo(10);
        }
    }
}
