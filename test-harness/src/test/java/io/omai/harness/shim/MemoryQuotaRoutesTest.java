package io.omai.harness.shim;

import static io.omai.harness.shim.ShimFixture.MiB;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.simulator.sim.SimNode;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every allocation route of the driver API, called directly by a program linked with -lcuda (the exported-wrapper
 * route), under a 64 MiB quota: exactly the limit succeeds, one unit more is refused with
 * CUDA_ERROR_OUT_OF_MEMORY, the refused call never reaches the driver (the simulator's own call counter does not
 * move), frees give the bytes back, and the memory views show the quota.
 */
class MemoryQuotaRoutesTest {
    private static final long LIMIT = 64 * MiB;

    @TempDir
    Path tmp;

    /** The smallest step a route can grow by: arrays are built of 4-byte float elements, VMM of granules. */
    private static long unit(String route) {
        return switch (route) {
            case "array", "array3d", "mipmap" -> 4;
            default -> 1;
        };
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"alloc", "pitch", "managed", "async", "pool", "vmm", "array", "array3d", "mipmap"})
    void exactlyTheLimitFitsOneUnitMoreIsRefusedBeforeTheDriver(String route) {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            long unit = unit(route);
            SimNode.Run run = f.run(
                    "omai-workload",
                    "counters",
                    "alloc",
                    route,
                    Long.toString(LIMIT), // exactly the limit
                    "counters",
                    "alloc",
                    route,
                    Long.toString(unit), // one unit more than the limit, in total
                    "counters",
                    "meminfo",
                    "totalmem",
                    "free",
                    "alloc",
                    route,
                    Long.toString(LIMIT + unit), // one unit more than the limit, at once
                    "counters",
                    "alloc",
                    route,
                    Long.toString(LIMIT), // the free gave everything back
                    "free",
                    "meminfo");

            List<SimNode.Result> allocs = run.all("alloc");
            List<SimNode.Result> counters = run.all("counters");
            List<SimNode.Result> meminfo = run.all("meminfo");
            assertThat(allocs).as(run.stdout() + run.stderr()).hasSize(4);
            assertThat(allocs.get(0).status()).as("exactly the limit").isEqualTo("CUDA_SUCCESS");
            assertThat(allocs.get(1).status()).as("limit + " + unit).isEqualTo("CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(allocs.get(2).status())
                    .as("limit + " + unit + " at once")
                    .isEqualTo("CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(allocs.get(3).status())
                    .as("the limit again after the free")
                    .isEqualTo("CUDA_SUCCESS");

            long before = counters.get(0).getLong("alloc_calls");
            assertThat(counters.get(1).getLong("alloc_calls"))
                    .as("the allowed allocation reached the driver")
                    .isEqualTo(before + 1);
            assertThat(counters.get(2).getLong("alloc_calls"))
                    .as("the refused one did not")
                    .isEqualTo(before + 1);
            assertThat(counters.get(3).getLong("alloc_calls"))
                    .as("nor the one too big at once")
                    .isEqualTo(before + 1);

            assertThat(meminfo.get(0).getLong("total")).isEqualTo(LIMIT);
            assertThat(meminfo.get(0).getLong("free"))
                    .as("all of the quota in use")
                    .isZero();
            assertThat(run.first("totalmem").getLong("total")).isEqualTo(LIMIT);
            assertThat(meminfo.get(1).getLong("free")).as("everything freed").isEqualTo(LIMIT);

            assertThat(run.exitCode()).as("only the two refusals failed").isEqualTo(1);
            assertThat(f.reserved(0)).as("the process ended with nothing held").isZero();
            assertThat(f.usage().devices().get(0).bytesPeak())
                    .as("never above the limit")
                    .isEqualTo(LIMIT);
            assertThat(f.usage().devices().get(0).deniedAllocs()).isEqualTo(2);
            assertThat(f.usage().slots())
                    .as("the exiting process gave its slot back")
                    .isEmpty();
        }
    }

    @Test
    void aDeviceOutsideTheControlFileGetsNothing() {
        // Two simulated GPUs, the container holds only GPU 0: GPU 1 is refused and shows no memory.
        try (ShimFixture f = ShimFixture.create(tmp, 2, LIMIT)) {
            SimNode.Run run = f.run("omai-workload", "--device", "1", "alloc", "alloc", "1", "meminfo", "totalmem");

            assertThat(run.first("alloc").status()).isEqualTo("CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(run.first("meminfo").getLong("total")).isZero();
            assertThat(run.first("totalmem").getLong("total")).isZero();
        }
    }

    @Test
    void devicesAreMatchedByUuidNotOrdinal() {
        // GPU 0: 16 MiB, GPU 1: 32 MiB; each device's limit applies to that device only.
        try (ShimFixture f = ShimFixture.create(tmp, 2, 16 * MiB, 32 * MiB)) {
            SimNode.Run on1 = f.run(
                    "omai-workload",
                    "--device",
                    "1",
                    "alloc",
                    "alloc",
                    Long.toString(32 * MiB),
                    "alloc",
                    "alloc",
                    "1",
                    "meminfo");

            assertThat(on1.all("alloc"))
                    .extracting(SimNode.Result::status)
                    .containsExactly("CUDA_SUCCESS", "CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(on1.first("meminfo").getLong("total")).isEqualTo(32 * MiB);
        }
    }

    @Test
    void aPoolAllocationIsChargedToThePoolsDeviceNotTheStreams() {
        // GPU 0 (current, 64 MiB) and GPU 1 (16 MiB); the pool lives on GPU 1.
        try (ShimFixture f = ShimFixture.create(tmp, 2, LIMIT, 16 * MiB)) {
            SimNode.Run over = f.run("omai-shim-bench", "pool-on", "1", Long.toString(32 * MiB));
            SimNode.Run fits = f.run("omai-shim-bench", "pool-on", "1", Long.toString(16 * MiB));

            assertThat(over.first("pool-alloc").status())
                    .as(over.stdout() + over.stderr())
                    .isEqualTo("2"); // CUDA_ERROR_OUT_OF_MEMORY: GPU 1's quota, although GPU 0 has room
            assertThat(fits.first("pool-alloc").status()).isEqualTo("0");
            assertThat(f.usage().devices().get(1).bytesPeak()).isEqualTo(16 * MiB);
            assertThat(f.usage().devices().get(0).bytesPeak())
                    .as("nothing charged to the stream's device")
                    .isZero();
        }
    }

    @Test
    void unlimitedDevicesAreCountedButNotCapped() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, -1L)) {
            SimNode.Run run =
                    f.run("omai-workload", "alloc", "alloc", Long.toString(1L << 30), "meminfo", "sleep", "0");

            assertThat(run.first("alloc").status()).isEqualTo("CUDA_SUCCESS");
            assertThat(run.first("meminfo").getLong("total"))
                    .as("the card's own total")
                    .isEqualTo(ShimFixture.GPU_MEMORY);
            assertThat(f.usage().devices().get(0).bytesPeak()).isEqualTo(1L << 30);
        }
    }
}
