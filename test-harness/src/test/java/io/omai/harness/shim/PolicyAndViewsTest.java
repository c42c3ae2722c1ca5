package io.omai.harness.shim;

import static io.omai.harness.shim.ShimFixture.MiB;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Fail-closed configuration, live limit changes, and the NVML view. */
class PolicyAndViewsTest {
    private static final long LIMIT = 64 * MiB;

    @TempDir
    Path tmp;

    private static AllocationSpec spec(long limit) {
        return new AllocationSpec(
                "test/pod/c",
                List.of(new DeviceQuota(SimNode.uuidOf(0), 0, limit, 1000, ComputeMode.HARD_CAP)),
                false,
                100_000);
    }

    @Test
    void aMissingControlFileRefusesAllDeviceMemoryWithOneClearLine() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            Map<String, String> env = new HashMap<>(f.shimEnv());
            Path missing = tmp.resolve("nowhere").resolve("control");
            env.put("OMAI_CONTROL_FILE", missing.toString());

            SimNode.Run run = f.runWith(
                    env, "omai-workload", "alloc", "alloc", "1", "alloc", "managed", "1", "meminfo", "counters");

            assertThat(run.first("init").status()).as("the rest of CUDA works").isEqualTo("CUDA_SUCCESS");
            assertThat(run.all("alloc")).extracting(SimNode.Result::status).containsOnly("CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(run.first("counters").getLong("alloc_calls")).isZero();
            assertThat(run.first("meminfo").getLong("total")).isZero();
            assertThat(run.stderr().lines().filter(l -> l.contains("omai-shim")).toList())
                    .as("exactly one line, naming the file and the policy")
                    .singleElement()
                    .satisfies(line -> {
                        assertThat(line)
                                .contains(missing.toString())
                                .contains("No such file or directory")
                                .contains("refused")
                                .contains("fail-closed");
                    });
        }
    }

    @Test
    void aCorruptControlFileIsNamedAndRefused() throws IOException {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            Path bogus = tmp.resolve("bogus-control");
            Files.write(bogus, new byte[4096]);
            Map<String, String> env = new HashMap<>(f.shimEnv());
            env.put("OMAI_CONTROL_FILE", bogus.toString());

            SimNode.Run run = f.runWith(env, "omai-workload", "alloc", "alloc", "1");

            assertThat(run.first("alloc").status()).isEqualTo("CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(run.stderr())
                    .contains(bogus.toString())
                    .contains("magic is 0x0000000000000000")
                    .contains("expected 0x314c544349414d4f");
        }
    }

    @Test
    void aLowerLimitRefusesNewAllocationsButBreaksNoExistingOne() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            SimNode.Started p = f.start(
                    "omai-workload",
                    "alloc",
                    "alloc",
                    Long.toString(48 * MiB),
                    "sleep",
                    "3",
                    "alloc",
                    "alloc",
                    "1",
                    "meminfo",
                    "free",
                    "alloc",
                    "alloc",
                    Long.toString(16 * MiB),
                    "sleep",
                    "3",
                    "alloc",
                    "alloc",
                    Long.toString(64 * MiB),
                    "meminfo");
            assertThat(p.awaitResult("alloc", Duration.ofSeconds(30)).status()).isEqualTo("CUDA_SUCCESS");
            f.files.control().update(spec(32 * MiB)); // below what is in use
            SimNode.Result slept = p.awaitResult("sleep", Duration.ofSeconds(30));
            assertThat(slept.status()).isEqualTo("CUDA_SUCCESS");
            SimNode.Run lowered = waitForSecondSleep(p, f);

            assertThat(lowered.all("alloc"))
                    .as(lowered.stdout() + lowered.stderr())
                    .extracting(SimNode.Result::status)
                    .containsExactly("CUDA_SUCCESS", "CUDA_ERROR_OUT_OF_MEMORY", "CUDA_SUCCESS", "CUDA_SUCCESS");
            SimNode.Result viewWhileOver = lowered.all("meminfo").get(0);
            assertThat(viewWhileOver.getLong("total")).isEqualTo(32 * MiB);
            assertThat(viewWhileOver.getLong("free"))
                    .as("saturates at zero, never wraps")
                    .isZero();
            assertThat(lowered.first("free").status())
                    .as("the existing allocation frees fine")
                    .isEqualTo("CUDA_SUCCESS");
            assertThat(lowered.all("meminfo").get(1).getLong("total")).isEqualTo(128 * MiB);
        }
    }

    /** Raises the limit to 128 MiB during the program's second sleep, then waits for it to finish. */
    private static SimNode.Run waitForSecondSleep(SimNode.Started p, ShimFixture f) {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (System.nanoTime() < deadline) {
            // The second allocation of 16 MiB has happened once the usage shows it (32 MiB -> 16 MiB in use).
            if (f.reserved(0) == 16 * MiB) {
                f.files.control().update(spec(128 * MiB));
                return p.finish(Duration.ofSeconds(30));
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted", e);
            }
        }
        throw new AssertionError("the program never reached its second phase");
    }

    @Test
    void nvmlAndCudaShowTheSameQuotaView() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            SimNode.Started holder = f.start(
                    "omai-workload", "alloc", "alloc", Long.toString(24 * MiB), "meminfo", "totalmem", "sleep", "120");
            SimNode.Result cuda = holder.awaitResult("meminfo", Duration.ofSeconds(30));
            SimNode.Run nvml = f.run("omai-nvml-query", "memory", "0");
            SimNode.Run plainNvml = f.runWith(Map.of(), "omai-nvml-query", "memory", "0");
            holder.kill();

            SimNode.Result mem = nvml.first("memory");
            assertThat(mem.getLong("total")).as(nvml.stdout() + nvml.stderr()).isEqualTo(LIMIT);
            assertThat(mem.getLong("used")).isEqualTo(24 * MiB);
            assertThat(mem.getLong("free")).isEqualTo(40 * MiB);
            assertThat(cuda.getLong("total")).isEqualTo(LIMIT);
            assertThat(cuda.getLong("free")).isEqualTo(40 * MiB);
            assertThat(plainNvml.first("memory").getLong("total"))
                    .as("without the shim: the card")
                    .isEqualTo(ShimFixture.GPU_MEMORY);
        }
    }
}
