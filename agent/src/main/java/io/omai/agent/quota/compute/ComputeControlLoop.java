package io.omai.agent.quota.compute;

import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.RegionFormatException;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.LongConsumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs one {@link ComputeController} per GPU every period: reads what each container's shim spent, what NVML
 * measured for its processes, and writes new grants, launch costs and the heartbeat into the control files.
 */
public final class ComputeControlLoop implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ComputeControlLoop.class);

    private final long periodNs;
    private final Supplier<Map<String, List<ComputeTarget>>> targetsByGpu;
    private final ProcessGpuTime gpuTime;
    private final Map<String, ComputeController> controllers = new HashMap<>();
    private final Map<String, String> lastGpuTimeError = new HashMap<>();
    private ScheduledExecutorService executor;
    private volatile long lastTickNanos;
    private volatile long ticks;
    private volatile LongConsumer tickDurationListener = nanos -> { };

    /**
     * @param targetsByGpu the containers on each GPU now (GPU UUID → targets); asked every tick
     * @param gpuTime per-process busy time from NVML
     */
    public ComputeControlLoop(long periodNs, Supplier<Map<String, List<ComputeTarget>>> targetsByGpu,
            ProcessGpuTime gpuTime) {
        this.periodNs = periodNs;
        this.targetsByGpu = targetsByGpu;
        this.gpuTime = gpuTime;
    }

    /** Starts ticking on a dedicated thread. */
    public synchronized void start() {
        if (executor != null) {
            return;
        }
        executor = Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform().name("compute-control").daemon()
                .factory());
        executor.scheduleAtFixedRate(this::tickSafely, periodNs, periodNs, TimeUnit.NANOSECONDS);
    }

    private void tickSafely() {
        try {
            tick();
        } catch (RuntimeException e) {
            log.error("compute control tick failed; grants keep their last values", e);
        }
    }

    /** One control step over every GPU; public so tests and the simulator can drive it deterministically. */
    public synchronized void tick() {
        long started = System.nanoTime();
        Map<String, List<ComputeTarget>> byGpu = targetsByGpu.get();
        controllers.keySet().retainAll(byGpu.keySet());
        for (Map.Entry<String, List<ComputeTarget>> gpu : byGpu.entrySet()) {
            tickGpu(gpu.getKey(), gpu.getValue());
        }
        lastTickNanos = System.nanoTime() - started;
        ticks++;
        tickDurationListener.accept(lastTickNanos);
    }

    private void tickGpu(String uuid, List<ComputeTarget> targets) {
        Map<Integer, Long> busyByPid = null;
        try {
            busyByPid = gpuTime.busySinceLastSample(uuid);
            lastGpuTimeError.remove(uuid);
        } catch (ProcessGpuTime.GpuTimeUnavailableException e) {
            if (!e.getMessage().equals(lastGpuTimeError.put(uuid, e.getMessage()))) {
                log.warn("gpu={} per-process utilisation unavailable ({}); trusting the shims' charges", uuid,
                        e.getMessage());
            }
        }
        List<ContainerSample> samples = new ArrayList<>(targets.size());
        List<ComputeTarget> sampled = new ArrayList<>(targets.size());
        for (ComputeTarget target : targets) {
            try {
                ControlSnapshot control = target.files().control().read();
                if (!control.computeEnforced() || target.deviceIndex() >= control.devices().size()) {
                    continue;
                }
                ControlSnapshot.Device device = control.devices().get(target.deviceIndex());
                UsageSnapshot usage = target.files().usage().read();
                UsageSnapshot.DeviceTotals totals = usage.devices().get(target.deviceIndex());
                samples.add(new ContainerSample(target.allocationId(), device.computeQuotaMilli(), device.mode(),
                        device.tokenGrantNs(), totals.tokensConsumedNs(), totals.launches(), totals.throttledNs(),
                        measured(usage, busyByPid)));
                sampled.add(target);
            } catch (RegionFormatException e) {
                log.warn("allocation={} gpu={} skipped this tick: {}", target.allocationId(), uuid, e.getMessage());
            }
        }
        ComputeController controller = controllers.computeIfAbsent(uuid, id -> new ComputeController(periodNs));
        List<GrantDecision> decisions = controller.tick(samples);
        for (int i = 0; i < decisions.size(); i++) {
            ComputeTarget target = sampled.get(i);
            GrantDecision decision = decisions.get(i);
            long current = target.files().control().tokenGrant(target.deviceIndex());
            if (decision.grantNs() > current) {
                target.files().control().addTokenGrant(target.deviceIndex(), decision.grantNs() - current);
            }
            target.files().control().setLaunchCost(target.deviceIndex(), decision.launchCostNs());
        }
        for (ComputeTarget target : targets) {
            target.files().control().heartbeat();
        }
    }

    /**
     * GPU time NVML attributes to the container's processes, or UNMEASURED when any live process of it has no
     * known host pid yet (a partial sum would read as the container using less than it does).
     */
    private static long measured(UsageSnapshot usage, Map<Integer, Long> busyByPid) {
        if (busyByPid == null) {
            return ContainerSample.UNMEASURED;
        }
        long busy = 0;
        for (UsageSnapshot.Slot slot : usage.slots()) {
            if (slot.hostPid() == 0) {
                return ContainerSample.UNMEASURED;
            }
            busy += busyByPid.getOrDefault(slot.hostPid(), 0L);
        }
        return busy;
    }

    /** Told each tick's duration in nanoseconds, on the loop's thread (the controller-tick histogram). */
    public void onTick(LongConsumer durationNanosListener) {
        this.tickDurationListener = durationNanosListener;
    }

    /** Duration of the last tick, for the controller-tick metric. */
    public long lastTickNanos() {
        return lastTickNanos;
    }

    public long ticks() {
        return ticks;
    }

    @Override
    public synchronized void close() {
        if (executor != null) {
            executor.shutdownNow();
            executor = null;
        }
    }
}
