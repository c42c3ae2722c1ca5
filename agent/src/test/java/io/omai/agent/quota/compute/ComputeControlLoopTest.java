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

    @Test
    void anIdleContainerThatStartsLaunchingIsGrantedAndCalibratedAsIfEveryTickReadItInFull() throws Exception {
        try (AllocationFiles a = allocation("a", 300, true);
                ShimLikeWriter shim = new ShimLikeWriter(a.usage().path())) {
            int slot = shim.claim(11, 1);
            a.usage().setHostPid(slot, 11, 1011);
            AtomicReference<Map<Integer, Long>> nvml = new AtomicReference<>(Map.of());
            ComputeControlLoop loop = new ComputeControlLoop(
                    100 * MS, () -> Map.of(GPU, List.of(new ComputeTarget("a", a, 0))), uuid -> nvml.get());
            for (int i = 0; i < 5; i++) {
                loop.tick(); // idle: after the first, the quick check only
            }
            assertThat(a.control().read().devices().getFirst().tokenGrantNs())
                    .as("an idle container banks no more than one period")
                    .isEqualTo(30 * MS);

            shim.launched(slot, 0, 10, 30 * MS, 5 * MS);
            nvml.set(Map.of(1011, 30 * MS));
            loop.tick();

            ControlSnapshot.Device device = a.control().read().devices().getFirst();
            assertThat(device.tokenGrantNs()).isEqualTo(60 * MS);
            assertThat(device.launchCostNs())
                    .as("NVML's 30 ms over 10 launches")
                    .isEqualTo(3 * MS);
        }
    }

    @Test
    void aProcessNvmlSeesBusyIsReadInFullEvenWhenItsCountersSayIdle() throws Exception {
        try (AllocationFiles a = allocation("a", 300, true);
                ShimLikeWriter shim = new ShimLikeWriter(a.usage().path())) {
            int slot = shim.claim(11, 1);
            a.usage().setHostPid(slot, 11, 1011);
            AtomicReference<Map<Integer, Long>> nvml = new AtomicReference<>(Map.of());
            ComputeControlLoop loop = new ComputeControlLoop(
                    100 * MS, () -> Map.of(GPU, List.of(new ComputeTarget("a", a, 0))), uuid -> nvml.get());
            loop.tick();
            shim.launched(slot, 0, 10, 10 * MS, 0);
            nvml.set(Map.of(1011, 10 * MS));
            loop.tick();
            assertThat(a.control().read().devices().getFirst().launchCostNs()).isEqualTo(1 * MS);

            // Its counters stand still (a shim that stopped charging) while NVML sees its process busy for 40 ms.
            nvml.set(Map.of(1011, 40 * MS));
            loop.tick();

            assertThat(a.control().read().devices().getFirst().launchCostNs())
                    .as("NVML's time is attributed (only a full read does that) and raises the launch cost")
                    .isGreaterThan(1 * MS);
        }
    }

    @Test
    void aQuotaOrEnforcementChangedWhileIdleTakesEffectOnTheNextTick() throws Exception {
        try (AllocationFiles a = allocation("a", 300, true);
                AllocationFiles m = allocation("m", 500, false)) {
            ComputeControlLoop loop = new ComputeControlLoop(
                    100 * MS,
                    () -> Map.of(GPU, List.of(new ComputeTarget("a", a, 0), new ComputeTarget("m", m, 0))),
                    uuid -> Map.of());
            loop.tick();
            loop.tick();
            assertThat(m.control().read().devices().getFirst().tokenGrantNs()).isZero();

            a.control().update(spec("a", 600, true));
            m.control().update(spec("m", 500, true));
            loop.tick();

            assertThat(a.control().read().devices().getFirst().tokenGrantNs())
                    .as("one period of the new 60 %%")
                    .isEqualTo(60 * MS);
            assertThat(m.control().read().devices().getFirst().tokenGrantNs())
                    .as("enforced now: granted at once")
                    .isEqualTo(50 * MS);
        }
    }

    @Test
    void onAnIdleNodeTheScheduleStepsEveryFifthPeriodUntilAContainerLaunches() throws Exception {
        try (AllocationFiles a = allocation("a", 300, true);
                ShimLikeWriter shim = new ShimLikeWriter(a.usage().path())) {
            int slot = shim.claim(11, 1);
            a.usage().setHostPid(slot, 11, 1011);
            ComputeControlLoop loop = new ComputeControlLoop(
                    100 * MS, () -> Map.of(GPU, List.of(new ComputeTarget("a", a, 0))), uuid -> Map.of());
            for (int i = 0; i < 1 + ComputeControlLoop.FULL_SAMPLE_EVERY; i++) {
                loop.scheduledStep(); // the first sees a new container, the next ten nothing
            }
            assertThat(loop.ticks()).isEqualTo(11);
            for (int i = 0; i < ComputeControlLoop.IDLE_STEP_EVERY; i++) {
                loop.scheduledStep();
            }
            assertThat(loop.ticks()).as("idle: one step in five periods").isEqualTo(12);

            shim.launched(slot, 0, 3, 3 * MS, 0);
            for (int i = 0; i < ComputeControlLoop.IDLE_STEP_EVERY; i++) {
                loop.scheduledStep();
            }
            loop.scheduledStep();
            assertThat(loop.ticks())
                    .as("the step that sees the launches ends the idle schedule: the next period steps again")
                    .isEqualTo(14);
            loop.tick();
            assertThat(loop.ticks()).as("an explicit tick is never skipped").isEqualTo(15);
        }
    }

    private static AllocationSpec spec(String name, int quota, boolean compute) {
        return new AllocationSpec(
                "ns/" + name + "/main",
                List.of(new DeviceQuota(GPU, 0, 1L << 30, quota, ComputeMode.HARD_CAP)),
                compute,
                100_000);
    }
}
