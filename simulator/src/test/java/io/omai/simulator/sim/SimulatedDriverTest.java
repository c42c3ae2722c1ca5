package io.omai.simulator.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The simulated driver, exercised through real processes: shared memory pool,
 * release of killed processes, NVML utilisation, config errors, entry-point
 * lookup semantics and XID delivery.
 */
class SimulatedDriverTest {

    private static final long MIB = 1L << 20;
    private static final long GIB = 1L << 30;
    private static final Duration RUN = Duration.ofSeconds(20);

    @TempDir
    Path dir;

    private SimNode node;

    @BeforeEach
    void setUp() {
        node = SimNode.create(dir, 1, GIB);
    }

    @Test
    void twoProcessesShareOneMemoryPool() {
        SimNode.Started a = node.start("omai-workload", "alloc", "alloc", "768MiB", "sleep", "20");
        try {
            assertThat(a.awaitResult("alloc", RUN).status()).isEqualTo("CUDA_SUCCESS");

            SimNode.Run b = node.run(
                    RUN,
                    "omai-workload",
                    "meminfo",
                    "alloc",
                    "alloc",
                    "512MiB",
                    "alloc",
                    "managed",
                    "256MiB",
                    "meminfo");

            assertThat(b.first("meminfo").getLong("free")).isEqualTo(256 * MIB);
            assertThat(b.first("meminfo").getLong("total")).isEqualTo(GIB);
            List<SimNode.Result> allocs = b.all("alloc");
            assertThat(allocs.get(0).status()).isEqualTo("CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(allocs.get(1).status()).isEqualTo("CUDA_SUCCESS");
            assertThat(b.all("meminfo").get(1).getLong("free")).isZero();
        } finally {
            a.kill();
        }
    }

    /** As the real driver: indices or (prefixes of) UUIDs, enumeration in list order, ending at a bad entry. */
    @Test
    void cudaVisibleDevicesSelectsAndReordersGpus(@TempDir Path scratch) {
        SimNode two = SimNode.create(
                scratch.resolve("two-gpus"),
                List.of(
                        new SimNode.Gpu(
                                "GPU-aaaaaaaa-0000-4000-8000-000000000000", "NVIDIA H100", GIB, "0000:17:00.0", 0, 132),
                        new SimNode.Gpu(
                                "GPU-bbbbbbbb-0000-4000-8000-000000000000",
                                "NVIDIA H100",
                                2 * GIB,
                                "0000:18:00.0",
                                0,
                                132)));
        String second = two.gpus().get(1).uuid();

        assertThat(totalMemory(two, second, 0)).isEqualTo(2 * GIB);
        assertThat(totalMemory(two, "1,0", 0)).isEqualTo(2 * GIB);
        assertThat(totalMemory(two, "1,0", 1)).isEqualTo(GIB);
        assertThat(totalMemory(two, "GPU-bbbb", 0)).as("a unique UUID prefix").isEqualTo(2 * GIB);
        SimNode.Run ambiguous = two.start(Map.of("CUDA_VISIBLE_DEVICES", "GPU-"), "omai-workload", "totalmem")
                .finish(RUN);
        assertThat(ambiguous.exitCode())
                .as("a prefix of both UUIDs names no GPU")
                .isNotZero();

        SimNode.Run cut = two.start(
                        Map.of("CUDA_VISIBLE_DEVICES", "1,bogus,0"), "omai-workload", "--device", "1", "totalmem")
                .finish(RUN);
        assertThat(cut.first("init").status())
                .as("the list ends at 'bogus': one device, ordinal 1 is invalid")
                .isEqualTo("CUDA_ERROR_INVALID_DEVICE");

        SimNode.Run none = two.start(Map.of("CUDA_VISIBLE_DEVICES", ""), "omai-workload", "totalmem")
                .finish(RUN);
        assertThat(none.exitCode()).isNotZero();
    }

    private static long totalMemory(SimNode node, String visible, int ordinal) {
        SimNode.Run run = node.start(
                        Map.of("CUDA_VISIBLE_DEVICES", visible),
                        "omai-workload",
                        "--device",
                        Integer.toString(ordinal),
                        "totalmem")
                .finish(RUN);
        assertThat(run.first("totalmem").status())
                .as(run.stdout() + run.stderr())
                .isEqualTo("CUDA_SUCCESS");
        return run.first("totalmem").getLong("total");
    }

    @Test
    void everyAllocationRouteIsChargedAndReleased() {
        SimNode.Run run = node.run(
                RUN,
                "omai-workload",
                "alloc",
                "alloc",
                "4MiB",
                "alloc",
                "pitch",
                "4MiB",
                "alloc",
                "managed",
                "4MiB",
                "alloc",
                "async",
                "4MiB",
                "alloc",
                "pool",
                "4MiB",
                "alloc",
                "vmm",
                "4MiB",
                "alloc",
                "array",
                "4MiB",
                "alloc",
                "array3d",
                "4MiB",
                "alloc",
                "mipmap",
                "4MiB",
                "meminfo",
                "free",
                "meminfo",
                "counters");

        assertThat(run.exitCode()).as(run.stdout() + run.stderr()).isZero();
        assertThat(run.all("alloc"))
                .hasSize(9)
                .allSatisfy(r -> assertThat(r.status()).isEqualTo("CUDA_SUCCESS"));
        assertThat(run.all("meminfo").get(0).getLong("free")).isEqualTo(GIB - 9 * 4 * MIB);
        assertThat(run.all("meminfo").get(1).getLong("free")).isEqualTo(GIB);
        assertThat(run.first("counters").getLong("alloc_calls")).isEqualTo(9);
        assertThat(run.first("counters").getLong("free_calls")).isEqualTo(9);
    }

    @Test
    void mipmapLevelsAreSummed() {
        // 1024 floats: levels of 4096 + 2048 + 1024 bytes.
        SimNode.Run run = node.run(RUN, "omai-workload", "--mip-levels", "3", "alloc", "mipmap", "4096", "meminfo");

        assertThat(run.first("meminfo").getLong("free")).isEqualTo(GIB - 7168);
    }

    @Test
    void everyLaunchRouteRunsItsKernelForTheGivenTime() {
        SimNode.Run run = node.run(
                RUN,
                "omai-workload",
                "launch",
                "kernel",
                "2",
                "2000",
                "launch",
                "kernel-ex",
                "2",
                "2000",
                "launch",
                "cooperative",
                "2",
                "2000",
                "launch",
                "multi-device",
                "2",
                "2000",
                "launch",
                "graph",
                "2",
                "2000",
                "launch",
                "ptsz",
                "2",
                "2000",
                "counters");

        assertThat(run.all("launch")).hasSize(6).allSatisfy(r -> {
            assertThat(r.status()).isEqualTo("CUDA_SUCCESS");
            assertThat(r.getLong("elapsed_us")).isGreaterThanOrEqualTo(4000);
        });
        SimNode.Result counters = run.first("counters");
        assertThat(counters.getLong("launch_calls")).isEqualTo(12);
        assertThat(counters.getLong("kernels_run")).isEqualTo(12);
        assertThat(counters.getLong("busy_us")).isEqualTo(24_000);
    }

    @Test
    void memoryOfAKilledProcessIsReleased() {
        SimNode.Started victim = node.start("omai-workload", "alloc", "managed", "512MiB", "sleep", "30");
        assertThat(victim.awaitResult("alloc", RUN).status()).isEqualTo("CUDA_SUCCESS");
        SimNode.Run before = node.run(RUN, "omai-nvml-query", "procs", "0", "memory", "0");
        assertThat(before.all("proc")).anySatisfy(p -> {
            assertThat(p.getLong("pid")).isEqualTo(victim.pid());
            assertThat(p.getLong("used")).isEqualTo(512 * MIB);
        });

        victim.kill(); // SIGKILL: no chance to free anything

        SimNode.Run nvml = node.run(RUN, "omai-nvml-query", "procs", "0", "memory", "0");
        assertThat(nvml.all("proc"))
                .noneSatisfy(p -> assertThat(p.getLong("pid")).isEqualTo(victim.pid()));
        assertThat(nvml.first("memory").getLong("used")).isZero();
        SimNode.Run cuda = node.run(RUN, "omai-workload", "meminfo", "alloc", "alloc", "1GiB");
        assertThat(cuda.first("meminfo").getLong("free")).isEqualTo(GIB);
        assertThat(cuda.first("alloc").status()).isEqualTo("CUDA_SUCCESS");
    }

    @Test
    void aForkedChildIsItsOwnProcessAndItsMemoryIsReleasedWhenItExits() {
        SimNode.Run run =
                node.run(RUN, "omai-workload", "alloc", "alloc", "1MiB", "fork-alloc", "100MiB", "meminfo", "counters");

        assertThat(run.first("fork-child-before-init").status()).isEqualTo("CUDA_ERROR_NOT_INITIALIZED");
        assertThat(run.first("fork-child-alloc").status()).isEqualTo("CUDA_SUCCESS");
        assertThat(run.first("fork-alloc").status()).isEqualTo("CUDA_SUCCESS");
        assertThat(run.first("meminfo").getLong("free")).isEqualTo(GIB - MIB); // the exited child's 100 MiB is back
        assertThat(run.first("counters").getLong("alloc_calls")).isEqualTo(1); // the child's call is not the parent's
    }

    @Test
    void aProcessKilledInsideTheStateLockDoesNotBlockTheOthers() {
        SimNode.Run dead = node.run(RUN, "omai-sim-ctl", "die-holding-lock");
        assertThat(dead.exitCode()).isEqualTo(128 + 9); // SIGKILL, as reported by the JDK

        SimNode.Run next = node.run(Duration.ofSeconds(10), "omai-workload", "alloc", "alloc", "1MiB", "meminfo");
        assertThat(next.first("alloc").status()).isEqualTo("CUDA_SUCCESS");
        assertThat(next.first("meminfo").getLong("free")).isEqualTo(GIB - MIB);
    }

    @Test
    void nvmlProcessUtilisationMatchesTheKernelsEachProcessRan() {
        SimNode.Started a = node.start("omai-workload", "duty", "kernel", "3", "30");
        SimNode.Started b = node.start("omai-workload", "duty", "graph", "3", "60");
        try {
            a.awaitResult("init", RUN);
            b.awaitResult("init", RUN);
            sleep(Duration.ofMillis(1800));
            // Window [0.3 s, 1.8 s] of the 3 s runs: both are in steady state.
            SimNode.Run q = node.run(RUN, "omai-nvml-query", "proc-util", "0", "1500", "util", "0");

            Map<Long, Long> smByPid = q.all("proc-util-sample").stream()
                    .collect(Collectors.toMap(r -> r.getLong("pid"), r -> r.getLong("sm")));
            assertThat(smByPid).containsKeys(a.pid(), b.pid());
            assertThat(smByPid.get(a.pid())).isCloseTo(30L, within(10L));
            assertThat(smByPid.get(b.pid())).isCloseTo(60L, within(10L));
            assertThat(q.first("util").getLong("sm")).isCloseTo(90L, within(10L));
        } finally {
            SimNode.Run ra = a.finish(RUN);
            SimNode.Run rb = b.finish(RUN);
            assertThat(ra.first("duty").status()).isEqualTo("CUDA_SUCCESS");
            assertThat(rb.first("duty").status()).isEqualTo("CUDA_SUCCESS");
        }
    }

    @Test
    void missingConfigFailsCuInitAndNvmlInitWithTheFileName() {
        Path missing = dir.resolve("nope.conf");
        Map<String, String> env = Map.of("OMAI_SIM_CONFIG", missing.toString());

        SimNode.Run cuda = node.start(env, "omai-workload", "meminfo").finish(RUN);
        assertThat(cuda.exitCode()).isEqualTo(1);
        assertThat(cuda.stderr())
                .contains("omai-sim: cuInit: cannot open config " + missing + ": No such file or directory");
        assertThat(cuda.first("init").status()).isEqualTo("CUDA_ERROR_NO_DEVICE");
        assertThat(cuda.first("device-count").status()).isEqualTo("CUDA_ERROR_NOT_INITIALIZED");

        SimNode.Run nvml = node.start(env, "omai-nvml-query", "devices").finish(RUN);
        assertThat(nvml.stderr()).contains("omai-sim: nvmlInit: cannot open config " + missing);
        assertThat(nvml.first("init").status()).isEqualTo("9"); // NVML_ERROR_DRIVER_NOT_LOADED
    }

    @Test
    void badConfigLinesAreReportedWithFileLineAndExpectation() {
        assertConfigError(
                "# a node\ngpu uuid=" + SimNode.uuidOf(0) + " memory=80GB\n",
                "sim.conf:2: bad memory value '80GB': expected a positive integer with an optional unit B, KiB, MiB, GiB or TiB (e.g. 80GiB)");
        assertConfigError(
                "gpus uuid=" + SimNode.uuidOf(0) + " memory=1GiB\n",
                "sim.conf:1: unknown line type 'gpus': expected 'gpu key=value...' or 'driver key=value...'");
        assertConfigError(
                "gpu memory=1GiB\n",
                "sim.conf:1: gpu line lacks uuid: expected at least uuid=GPU-... and memory=<bytes>");
        assertConfigError(
                "gpu uuid=" + SimNode.uuidOf(0) + " memory=1GiB colour=red\n",
                "sim.conf:1: unknown key 'colour' on a gpu line");
        assertConfigError("", "sim.conf: no gpu lines: expected at least one");
    }

    private void assertConfigError(String config, String message) {
        node.writeConfig(config);
        SimNode.Run run = node.run(RUN, "omai-workload", "meminfo");
        assertThat(run.stderr()).contains(message);
        assertThat(run.stderr().lines().filter(l -> l.startsWith("omai-sim:")).count())
                .isEqualTo(1);
        assertThat(run.first("init").status()).isEqualTo("CUDA_ERROR_NO_DEVICE");
    }

    @Test
    void getProcAddressFollowsVersionAndPerThreadSemantics() {
        SimNode.Run legacy = node.run(
                RUN,
                "omai-cudart-loader",
                "resolve",
                "cuMemAlloc",
                "12080",
                "resolve",
                "cuMemAlloc",
                "3000",
                "resolve",
                "cuGraphAddKernelNode",
                "11080",
                "resolve",
                "cuGraphAddKernelNode",
                "12000",
                "resolve",
                "cuGraphInstantiate",
                "11000",
                "resolve",
                "cuGetProcAddress",
                "12080",
                "resolve",
                "cuLaunchKernel",
                "12080",
                "resolve",
                "cuNoSuchFunction",
                "12080",
                "resolve",
                "cuLaunchKernelEx",
                "11040");
        List<SimNode.Result> r = legacy.all("resolve");
        assertResolved(r.get(0), "0", "0", "cuMemAlloc_v2");
        assertResolved(r.get(1), "500", "2", "none"); // CUDA_ERROR_NOT_FOUND, VERSION_NOT_SUFFICIENT
        assertResolved(r.get(2), "0", "0", "cuGraphAddKernelNode");
        assertResolved(r.get(3), "0", "0", "cuGraphAddKernelNode_v2");
        assertResolved(r.get(4), "0", "0", "cuGraphInstantiate_v2");
        assertResolved(r.get(5), "0", "0", "cuGetProcAddress_v2");
        assertResolved(r.get(6), "0", "0", "cuLaunchKernel");
        assertResolved(r.get(7), "500", "1", "none"); // SYMBOL_NOT_FOUND
        assertResolved(r.get(8), "500", "2", "none");

        SimNode.Run perThread = node.run(
                RUN,
                "omai-cudart-loader",
                "--per-thread",
                "resolve",
                "cuLaunchKernel",
                "resolve",
                "cuMemAlloc",
                "resolve",
                "cuGraphLaunch",
                "alloc",
                "1MiB",
                "launch",
                "2",
                "1000",
                "counters");
        List<SimNode.Result> p = perThread.all("resolve");
        assertResolved(p.get(0), "0", "0", "cuLaunchKernel_ptsz");
        assertResolved(p.get(1), "0", "0", "cuMemAlloc_v2"); // no per-thread variant
        assertResolved(p.get(2), "0", "0", "cuGraphLaunch_ptsz");
        assertThat(perThread.first("alloc").status()).isEqualTo("CUDA_SUCCESS");
        assertThat(perThread.first("launch").get("symbol")).isEqualTo("cuLaunchKernel_ptsz");
        assertThat(perThread.first("counters").getLong("alloc_calls")).isEqualTo(1);
        assertThat(perThread.first("counters").getLong("kernels_run")).isEqualTo(2);
    }

    private static void assertResolved(SimNode.Result r, String status, String symbolStatus, String symbol) {
        assertThat(r.get("status")).as("status of %s", r).isEqualTo(status);
        assertThat(r.get("symbol_status")).as("symbol_status of %s", r).isEqualTo(symbolStatus);
        assertThat(r.get("symbol")).as("symbol of %s", r).isEqualTo(symbol);
    }

    @Test
    void injectedXidReachesNvmlEventSetWaitAndALostGpuIsReported() {
        SimNode.Started waiter = node.start("omai-nvml-query", "wait-event", "0", "15000");
        waiter.awaitResult("event-registered", RUN);

        SimNode.Run ctl = node.run(RUN, "omai-sim-ctl", "inject-xid", "0", "48");
        assertThat(ctl.exitCode()).as(ctl.stderr()).isZero();

        SimNode.Result event = waiter.awaitResult("event", RUN);
        assertThat(event.getLong("xid")).isEqualTo(48);
        assertThat(event.getLong("type")).isEqualTo(8); // nvmlEventTypeXidCriticalError
        waiter.finish(RUN);

        assertThat(node.run(RUN, "omai-sim-ctl", "lose-gpu", "0").exitCode()).isZero();
        SimNode.Run lost = node.run(RUN, "omai-nvml-query", "memory", "0");
        assertThat(lost.first("memory").status()).isEqualTo("15"); // NVML_ERROR_GPU_IS_LOST
    }

    @Test
    void nvmlDescribesTheConfiguredDevices() {
        SimNode two = SimNode.create(dir.resolve("two"), 2, 80 * GIB);
        SimNode.Run run = two.run(RUN, "omai-nvml-query", "driver", "devices");

        assertThat(run.first("driver").get("cuda")).isEqualTo("12080");
        List<SimNode.Result> devices = run.all("device");
        assertThat(devices).hasSize(2);
        assertThat(devices.get(1).get("uuid")).isEqualTo(SimNode.uuidOf(1));
        assertThat(devices.get(1).get("name")).isEqualTo("NVIDIA H100 80GB HBM3");
        assertThat(devices.get(1).getLong("total")).isEqualTo(80 * GIB);
        assertThat(devices.get(1).get("pci")).isEqualTo("00000000:18:00.0");
    }

    private static void sleep(Duration d) {
        try {
            Thread.sleep(d);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }
}
