package io.omai.agent.quota.compute;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.MonotonicClock;
import io.omai.agent.quota.shm.ShimLikeWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ComputeControlLoopTest {
    private static final long MS = 1_000_000;
    private static final String GPU = "GPU-aaaaaaaa-0000-0000-0000-000000000001";

    @TempDir
    Path dir;

    private AllocationFiles allocation(String name, int quota, boolean compute) throws Exception {
        return AllocationFiles.create(
                dir.resolve(name),
                new AllocationSpec(
                        "ns/" + name + "/main",
                        List.of(new DeviceQuota(GPU, 0, 1L << 30, quota, ComputeMode.HARD_CAP)),
                        compute,
                        100_000));
    }

    @Test
    void whatShimsSpentWhileTheHeartbeatWasStaleIsGrantedOnceNotOwed() throws Exception {
        try (AllocationFiles a = allocation("a", 300, true)) {
            // The agent was gone for 5 s: its shims ran on their own for the 3 s after the 2 s staleness limit.
            a.control().heartbeat(MonotonicClock.nanos() - 5_000 * MS);
            ComputeControlLoop loop = new ComputeControlLoop(
                    100 * MS, () -> Map.of(GPU, List.of(new ComputeTarget("a", a, 0))), uuid -> Map.of());

            loop.tick();
            long grant = a.control().read().devices().getFirst().tokenGrantNs();
            assertThat(grant)
                    .as("30 % of 3 s, and a little more for the time the test itself took")
                    .isBetween(900 * MS, 1_000 * MS);
            loop.tick();
            assertThat(a.control().read().devices().getFirst().tokenGrantNs())
                    .as("the heartbeat is fresh again: nothing more, and nothing was spent")
                    .isEqualTo(grant);
        }
    }

    @Test
    void aUsageFileItsContainerTruncatedCostsOnlyThatContainerItsGrant() throws Exception {
        try (AllocationFiles a = allocation("a", 300, true);
                AllocationFiles b = allocation("b", 700, true)) {
            ComputeControlLoop loop = new ComputeControlLoop(
                    100 * MS,
                    () -> Map.of(GPU, List.of(new ComputeTarget("a", a, 0), new ComputeTarget("b", b, 0))),
                    uuid -> Map.of());
            try (java.nio.channels.FileChannel ch =
                    java.nio.channels.FileChannel.open(a.usage().path(), java.nio.file.StandardOpenOption.WRITE)) {
                ch.truncate(0); // from inside the container: its usage file is mounted read-write
            }

            loop.tick(); // before: the InternalError of the faulting mapping ended the tick (and the loop)

            assertThat(b.control().read().devices().getFirst().tokenGrantNs()).isEqualTo(70 * MS);
            assertThat(b.control().read().heartbeatNs()).isPositive();
            assertThat(a.control().read().heartbeatNs())
                    .as("its shims must not fall back to their own quota")
                    .isPositive();
            assertThat(a.control().read().devices().getFirst().tokenGrantNs()).isZero();
            assertThat(loop.failingTargets()).containsOnlyKeys("a#0");
            assertThat(loop.failingTargets().get("a#0")).contains("0 bytes");
        }
    }

    @Test
    void aFrozenTargetIsHeartbeatenButNeverGranted() throws Exception {
        try (AllocationFiles a = allocation("a", 300, true)) {
            ComputeControlLoop loop = new ComputeControlLoop(
                    100 * MS, () -> Map.of(GPU, List.of(new ComputeTarget("a", a, 0, true))), uuid -> Map.of());
            a.control().heartbeat(MonotonicClock.nanos() - 5_000 * MS); // stale: nothing owed to a frozen one

            loop.tick();

            assertThat(a.control().read().devices().getFirst().tokenGrantNs()).isZero();
            assertThat(MonotonicClock.nanos() - a.control().read().heartbeatNs())
                    .isLessThan(1_000 * MS);
        }
    }

    @Test
    void writesGrantsLaunchCostsAndHeartbeatsFromUsageAndNvml() throws Exception {
        try (AllocationFiles a = allocation("a", 300, true);
                AllocationFiles b = allocation("b", 700, true);
                ShimLikeWriter shimA = new ShimLikeWriter(a.usage().path());
                ShimLikeWriter shimB = new ShimLikeWriter(b.usage().path())) {
            int slotA = shimA.claim(11, 1);
            int slotB = shimB.claim(22, 1);
            a.usage().setHostPid(slotA, 11, 1011);
            b.usage().setHostPid(slotB, 22, 1022);
            AtomicReference<Map<Integer, Long>> nvml = new AtomicReference<>(Map.of());
            ComputeControlLoop loop = new ComputeControlLoop(
                    100 * MS,
                    () -> Map.of(GPU, List.of(new ComputeTarget("a", a, 0), new ComputeTarget("b", b, 0))),
                    uuid -> nvml.get());

            loop.tick();
            ControlSnapshot.Device first = a.control().read().devices().getFirst();
            assertThat(first.tokenGrantNs()).isEqualTo(30 * MS);
            assertThat(b.control().read().devices().getFirst().tokenGrantNs()).isEqualTo(70 * MS);
            assertThat(a.control().read().heartbeatNs()).isPositive();

            // A spent its grant in 10 launches that NVML saw take 3 ms each; B launched 35 kernels of 2 ms.
            shimA.launched(slotA, 0, 10, 30 * MS, 5 * MS);
            shimB.launched(slotB, 0, 35, 70 * MS, 0);
            nvml.set(Map.of(1011, 30 * MS, 1022, 70 * MS, 4242, 50 * MS));
            loop.tick();
            ControlSnapshot.Device second = a.control().read().devices().getFirst();
            assertThat(second.tokenGrantNs()).isEqualTo(60 * MS);
            assertThat(second.launchCostNs())
                    .as("the first measurement replaces the 100 us default: 30 ms over 10")
                    .isEqualTo(3 * MS);
            assertThat(loop.ticks()).isEqualTo(2);
        }
    }

    @Test
    void allocationsWithoutComputeEnforcementGetNoGrants() throws Exception {
        try (AllocationFiles memoryOnly = allocation("m", 500, false)) {
            ComputeControlLoop loop = new ComputeControlLoop(
                    100 * MS, () -> Map.of(GPU, List.of(new ComputeTarget("m", memoryOnly, 0))), uuid -> Map.of());
            loop.tick();
            assertThat(memoryOnly.control().read().devices().getFirst().tokenGrantNs())
                    .isZero();
            assertThat(memoryOnly.control().read().heartbeatNs())
                    .as("still heartbeated")
                    .isPositive();
        }
    }

    @Test
    void unavailableNvmlFallsBackToTheShimsCharges() throws Exception {
        try (AllocationFiles a = allocation("a", 250, true)) {
            ComputeControlLoop loop =
                    new ComputeControlLoop(100 * MS, () -> Map.of(GPU, List.of(new ComputeTarget("a", a, 0))), uuid -> {
                        throw new ProcessGpuTime.GpuTimeUnavailableException("NVML_ERROR_NOT_SUPPORTED");
                    });
            loop.tick();
            loop.tick();
            assertThat(a.control().read().devices().getFirst().tokenGrantNs()).isEqualTo(25 * MS);
        }
    }
}
