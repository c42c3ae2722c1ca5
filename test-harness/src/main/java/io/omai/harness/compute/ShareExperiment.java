package io.omai.harness.compute;

import io.omai.agent.quota.DeadProcessReaper;
import io.omai.agent.quota.LinuxProcessTable;
import io.omai.agent.quota.compute.ComputeControlLoop;
import io.omai.agent.quota.compute.ComputeTarget;
import io.omai.agent.quota.compute.ProcessGpuTime;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One compute-share experiment on one simulated GPU: each container is an allocation (control + usage file with
 * compute enforced) and one saturating {@code omai-workload duty} process under the real shim; the agent side is
 * the real {@link ComputeControlLoop} with {@link DeadProcessReaper} recording host pids and a
 * {@link ProcessGpuTime} (NVML) feeding it. What each container achieved is measured independently of the
 * controller's input, from the simulator's per-process busy counters ({@code omai-sim-ctl show}), per window.
 */
public final class ShareExperiment {
    /** A container: its quota, mode and when (seconds after the start) its process starts. */
    public record Container(String name, int quotaMilli, ComputeMode mode, double startAfterSeconds) {}

    /**
     * One window, by container name: the share of the GPU achieved (percent), and the time its launches waited
     * for tokens (ms per second of wall time, summed over its processes' threads). A container below its share
     * that did not wait was held back by something else than its grant (on these cores: waiting for a CPU).
     */
    public record Window(
            double startSeconds,
            double endSeconds,
            Map<String, Double> achievedPercent,
            Map<String, Double> throttledMsPerSecond) {}

    public static final Duration CONTROL_PERIOD = Duration.ofMillis(100);

    private final SimNode node;
    private final Path workDir;
    private final ProcessGpuTime gpuTime;
    private final double kernelMs;
    private final int processesPerContainer;

    /**
     * @param node a simulated node whose GPU 0 the containers share
     * @param workDir where the allocation directories go
     * @param gpuTime the controller's NVML input (its window starts at its first call)
     * @param kernelMs length of each workload kernel: the duty period at 100 %
     * @param processesPerContainer saturating processes per container. The simulator's launches are synchronous,
     *     so one process leaves the GPU idle from each kernel's end until it is scheduled again to launch the next
     *     (milliseconds on a loaded machine); a second process of the same container fills those gaps, as queued
     *     asynchronous launches do on a real GPU
     */
    public ShareExperiment(
            SimNode node, Path workDir, ProcessGpuTime gpuTime, double kernelMs, int processesPerContainer) {
        this.node = node;
        this.workDir = workDir;
        this.gpuTime = gpuTime;
        this.kernelMs = kernelMs;
        this.processesPerContainer = processesPerContainer;
    }

    /** Runs the containers for {@code seconds}, measuring every {@code windowSeconds}. */
    public List<Window> run(String caseName, List<Container> containers, double seconds, double windowSeconds)
            throws IOException, InterruptedException {
        String uuid = node.gpus().getFirst().uuid();
        Map<String, AllocationFiles> files = new LinkedHashMap<>();
        List<ComputeTarget> targets = new ArrayList<>();
        try {
            for (Container c : containers) {
                Path dir = workDir.resolve(caseName.replaceAll("[^A-Za-z0-9]", "_") + "-" + c.name());
                AllocationFiles.delete(dir);
                AllocationFiles f = AllocationFiles.create(
                        dir,
                        new AllocationSpec(
                                "compute/" + caseName + "/" + c.name(),
                                List.of(new DeviceQuota(uuid, 0, 64L << 30, c.quotaMilli(), c.mode())),
                                true,
                                (int) TimeUnit.NANOSECONDS.toMicros(CONTROL_PERIOD.toNanos())));
                files.put(c.name(), f);
                targets.add(new ComputeTarget(c.name(), f, 0));
            }
            List<ComputeTarget> fixedTargets = List.copyOf(targets);
            try (ComputeControlLoop loop = new ComputeControlLoop(
                            CONTROL_PERIOD.toNanos(), () -> Map.of(uuid, fixedTargets), gpuTime);
                    DeadProcessReaper reaper =
                            new DeadProcessReaper(new LinuxProcessTable(), () -> List.copyOf(files.values()))) {
                loop.start();
                reaper.start(DeadProcessReaper.DEFAULT_PERIOD);
                return measure(containers, files, seconds, windowSeconds);
            }
        } finally {
            files.values().forEach(AllocationFiles::close);
        }
    }

    private List<Window> measure(
            List<Container> containers, Map<String, AllocationFiles> files, double seconds, double windowSeconds)
            throws InterruptedException {
        Map<String, List<SimNode.Started>> started = new HashMap<>();
        List<Window> windows = new ArrayList<>();
        long t0 = System.nanoTime();
        try {
            Map<Long, Long> previousBusy = busyByPid();
            long previousAt = System.nanoTime();
            Map<String, Long> previousThrottled = throttled(files);
            int windowCount = (int) Math.round(seconds / windowSeconds);
            for (int w = 1; w <= windowCount; w++) {
                double windowStart = (w - 1) * windowSeconds;
                startDue(containers, files, started, windowStart, t0);
                sleepUntil(t0 + (long) (w * windowSeconds * 1e9));
                long before = System.nanoTime();
                Map<Long, Long> busy = busyByPid();
                long at = (before + System.nanoTime()) / 2;
                Map<String, Long> throttled = throttled(files);
                Map<String, Double> achieved = new LinkedHashMap<>();
                Map<String, Double> waited = new LinkedHashMap<>();
                for (Container c : containers) {
                    long delta = 0;
                    for (SimNode.Started s : started.getOrDefault(c.name(), List.of())) {
                        delta += busy.getOrDefault(s.pid(), 0L) - previousBusy.getOrDefault(s.pid(), 0L);
                    }
                    achieved.put(c.name(), 100.0 * delta / (at - previousAt));
                    waited.put(
                            c.name(),
                            1000.0 * (throttled.get(c.name()) - previousThrottled.get(c.name())) / (at - previousAt));
                }
                windows.add(new Window(windowStart, w * windowSeconds, achieved, waited));
                previousBusy = busy;
                previousAt = at;
                previousThrottled = throttled;
            }
            return windows;
        } finally {
            started.values().forEach(list -> list.forEach(SimNode.Started::kill));
        }
    }

    /** Starts the processes of containers due by {@code offsetSeconds}, at their exact start time. */
    private void startDue(
            List<Container> containers,
            Map<String, AllocationFiles> files,
            Map<String, List<SimNode.Started>> started,
            double offsetSeconds,
            long t0)
            throws InterruptedException {
        for (Container c : containers) {
            if (started.containsKey(c.name()) || c.startAfterSeconds() > offsetSeconds) {
                continue;
            }
            sleepUntil(t0 + (long) (c.startAfterSeconds() * 1e9));
            Path dir = files.get(c.name()).directory();
            Map<String, String> env = new HashMap<>();
            env.put(
                    "LD_PRELOAD",
                    SimNode.nativeBuildDir().resolve("lib/libomai-shim.so").toString());
            env.put("OMAI_CONTROL_FILE", dir.resolve(AllocationFiles.CONTROL).toString());
            env.put("OMAI_USAGE_FILE", dir.resolve(AllocationFiles.USAGE).toString());
            // Saturating: one kernel of the whole period, every period; it runs until killed.
            List<SimNode.Started> processes = new ArrayList<>();
            for (int p = 0; p < processesPerContainer; p++) {
                processes.add(node.start(
                        env,
                        "omai-workload",
                        "duty",
                        "kernel",
                        "3600",
                        "100",
                        String.format(Locale.ROOT, "%.3f", kernelMs)));
            }
            started.put(c.name(), processes);
        }
    }

    private static Map<String, Long> throttled(Map<String, AllocationFiles> files) {
        Map<String, Long> out = new HashMap<>();
        files.forEach(
                (name, f) -> out.put(name, f.usage().read().devices().getFirst().throttledNs()));
        return out;
    }

    /** Busy nanoseconds per pid as the simulator counts them (kernel time, charged when launched). */
    private Map<Long, Long> busyByPid() {
        SimNode.Run show = node.run(Duration.ofSeconds(10), "omai-sim-ctl", "show");
        Map<Long, Long> busy = new HashMap<>();
        for (String line : show.stdout().split("\n", -1)) {
            if (!line.startsWith("proc ")) {
                continue;
            }
            long pid = -1;
            long busyUs = 0;
            for (String field : line.split(" ", -1)) {
                if (field.startsWith("pid=")) {
                    pid = Long.parseLong(field.substring(4));
                } else if (field.startsWith("busy_us=")) {
                    busyUs = Long.parseLong(field.substring(8));
                }
            }
            busy.put(pid, busyUs * 1000);
        }
        return busy;
    }

    private static void sleepUntil(long nanoTime) throws InterruptedException {
        long left = nanoTime - System.nanoTime();
        if (left > 0) {
            TimeUnit.NANOSECONDS.sleep(left);
        }
    }
}
