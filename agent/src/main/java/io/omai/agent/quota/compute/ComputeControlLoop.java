package io.omai.agent.quota.compute;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.lifecycle.IsolatedFailures;
import io.omai.agent.lifecycle.LoopSlot;
import io.omai.agent.lifecycle.SupervisedLoop;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.MonotonicClock;
import io.omai.agent.quota.shm.RegionFormatException;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.LongConsumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs one {@link ComputeController} per GPU every period: reads what each container's shim spent, what NVML
 * measured for its processes, and writes new grants, launch costs and the heartbeat into the control files.
 *
 * <p>Each container is handled in isolation ({@link IsolatedFailures}): a usage file its container truncated or
 * scribbled over costs that container its sample (its grant keeps its last value), never another container
 * its grant or heartbeat. A frozen target ({@link ComputeTarget#frozen}) is heartbeaten but never granted.
 */
public final class ComputeControlLoop implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ComputeControlLoop.class);
    /** The shim's rule for "agent gone" (docs/shim.md): heartbeat older than max(2 s, 20 periods). */
    static final long STALE_MIN_NS = 2_000_000_000L;

    static final long STALE_PERIODS = 20;

    private final long periodNs;
    private final Supplier<Map<String, List<ComputeTarget>>> targetsByGpu;
    private final ProcessGpuTime gpuTime;

    @GuardedBy("this")
    private final Map<String, ComputeController> controllers = new HashMap<>();

    @GuardedBy("this")
    private final Map<String, String> lastGpuTimeError = new HashMap<>();
    /** System.nanoTime of each GPU's previous step: the controller grants for the time that really passed. */
    @GuardedBy("this")
    private final Map<String, Long> lastStepAt = new HashMap<>();

    private final IsolatedFailures failures = new IsolatedFailures("compute-control");
    private final LoopSlot loop = new LoopSlot();
    private volatile long lastTickNanos;
    private volatile long ticks;
    private volatile LongConsumer tickDurationListener = nanos -> {};

    /**
     * @param targetsByGpu the containers on each GPU now (GPU UUID → targets); asked every tick
     * @param gpuTime per-process busy time from NVML
     */
    public ComputeControlLoop(
            long periodNs, Supplier<Map<String, List<ComputeTarget>>> targetsByGpu, ProcessGpuTime gpuTime) {
        this.periodNs = periodNs;
        this.targetsByGpu = targetsByGpu;
        this.gpuTime = gpuTime;
    }

    /**
     * Starts ticking on a supervised loop (nothing a tick throws ends it); the loop misses its deadline for
     * {@code /healthz} after 10 s without a completed tick.
     *
     * @return the loop, for {@code /healthz}
     */
    public synchronized SupervisedLoop start() {
        Duration period = Duration.ofNanos(periodNs);
        return loop.startIfIdle(() ->
                SupervisedLoop.start("compute-control", period, period, Duration.ofSeconds(10), () -> step(true)));
    }

    /**
     * One control step over every GPU, taken to be exactly one period after the previous one; public so tests and
     * the simulator can drive it deterministically. The loop's own thread ({@link #start}) grants instead for the
     * time that really passed since the previous step, so late steps lose no container's time.
     */
    public synchronized void tick() {
        step(false);
    }

    private synchronized void step(boolean timed) {
        long started = System.nanoTime();
        Map<String, List<ComputeTarget>> byGpu = targetsByGpu.get();
        controllers.keySet().retainAll(byGpu.keySet());
        lastStepAt.keySet().retainAll(byGpu.keySet());
        // Before any heartbeat of this tick: a control file whose heartbeat is stale had shims running on their
        // own (at their quota) and those spendings must not be a debt to the grants that follow.
        long now = MonotonicClock.nanos();
        Set<String> subjects = new HashSet<>();
        for (List<ComputeTarget> targets : byGpu.values()) {
            for (ComputeTarget target : targets) {
                subjects.add(subject(target));
                subjects.add(subject(target) + "#heartbeat");
                if (!target.frozen()) {
                    failures.run(subject(target), () -> grantWhatTheShimSpentAlone(target, now));
                }
            }
        }
        for (Map.Entry<String, List<ComputeTarget>> gpu : byGpu.entrySet()) {
            tickGpu(gpu.getKey(), gpu.getValue(), timed);
        }
        failures.retain(subjects);
        lastTickNanos = System.nanoTime() - started;
        ticks++;
        tickDurationListener.accept(lastTickNanos);
    }

    @GuardedBy("this")
    private void tickGpu(String uuid, List<ComputeTarget> targets, boolean timed) {
        Map<Integer, Long> busyByPid = null;
        try {
            busyByPid = gpuTime.busySinceLastSample(uuid);
            lastGpuTimeError.remove(uuid);
        } catch (ProcessGpuTime.GpuTimeUnavailableException e) {
            if (!e.getMessage().equals(lastGpuTimeError.put(uuid, e.getMessage()))) {
                log.warn(
                        "gpu={} per-process utilisation unavailable ({}); trusting the shims' charges",
                        uuid,
                        e.getMessage());
            }
        }
        List<ContainerSample> samples = new ArrayList<>(targets.size());
        List<ComputeTarget> sampled = new ArrayList<>(targets.size());
        Map<Integer, Long> busy = busyByPid;
        for (ComputeTarget target : targets) {
            if (target.frozen()) {
                continue; // no sample, no grant: the grant stays where it was frozen
            }
            failures.run(subject(target), () -> {
                ContainerSample sample = sample(target, busy);
                if (sample != null) {
                    samples.add(sample);
                    sampled.add(target);
                }
            });
        }
        ComputeController controller = controllers.computeIfAbsent(uuid, id -> new ComputeController(periodNs));
        long stepAt = System.nanoTime();
        Long previous = lastStepAt.put(uuid, stepAt);
        List<GrantDecision> decisions =
                controller.tick(samples, timed && previous != null ? stepAt - previous : periodNs);
        for (int i = 0; i < decisions.size(); i++) {
            ComputeTarget target = sampled.get(i);
            GrantDecision decision = decisions.get(i);
            failures.run(subject(target), () -> {
                long current = target.files().control().tokenGrant(target.deviceIndex());
                if (decision.grantNs() > current) {
                    target.files().control().addTokenGrant(target.deviceIndex(), decision.grantNs() - current);
                }
                target.files().control().setLaunchCost(target.deviceIndex(), decision.launchCostNs());
            });
        }
        for (ComputeTarget target : targets) {
            failures.run(
                    subject(target) + "#heartbeat",
                    () -> target.files().control().heartbeat());
        }
    }

    /** This tick's sample of one container, or null when its compute is not enforced (nothing to grant). */
    private ContainerSample sample(ComputeTarget target, Map<Integer, Long> busyByPid) {
        ControlSnapshot control;
        try {
            control = target.files().control().read();
        } catch (RegionFormatException e) {
            throw new IllegalStateException("control file unreadable: " + e.getMessage(), e);
        }
        if (!control.computeEnforced()
                || target.deviceIndex() >= control.devices().size()) {
            return null;
        }
        ControlSnapshot.Device device = control.devices().get(target.deviceIndex());
        UsageSnapshot usage = target.files().usage().read();
        if (target.deviceIndex() >= usage.devices().size()) {
            throw new IllegalStateException("usage file has " + usage.devices().size() + " device totals, expected"
                    + " more than " + target.deviceIndex());
        }
        UsageSnapshot.DeviceTotals totals = usage.devices().get(target.deviceIndex());
        return new ContainerSample(
                target.allocationId(),
                device.computeQuotaMilli(),
                device.mode(),
                device.tokenGrantNs(),
                totals.tokensConsumedNs(),
                totals.launches(),
                totals.throttledNs(),
                measured(usage, busyByPid));
    }

    private static String subject(ComputeTarget target) {
        return target.allocationId() + "#" + target.deviceIndex();
    }

    /** Containers whose last tick failed, with the error ({@code allocation#device} → error). */
    public Map<String, String> failingTargets() {
        return failures.failing();
    }

    /**
     * While the heartbeat was stale the shim let the container run at its quota on its own, extending the grant
     * by quota/1000 of the time since the heartbeat went stale. The same amount is added to the grant here, once,
     * so that a restarted (or stalled) agent takes over without holding the container back for as long as it
     * was gone.
     */
    private void grantWhatTheShimSpentAlone(ComputeTarget target, long now) {
        ControlSnapshot control;
        try {
            control = target.files().control().read();
        } catch (RegionFormatException e) {
            return; // reported by the tick itself
        }
        long heartbeat = control.heartbeatNs();
        if (!control.computeEnforced()
                || heartbeat == 0
                || target.deviceIndex() >= control.devices().size()) {
            return;
        }
        long threshold = Math.max(STALE_MIN_NS, STALE_PERIODS * control.computePeriodUs() * 1_000L);
        long staleFor = now - heartbeat - threshold;
        if (staleFor <= 0) {
            return;
        }
        int quota = Math.clamp(control.devices().get(target.deviceIndex()).computeQuotaMilli(), 0, 1000);
        long owed = staleFor / 1000 * quota + staleFor % 1000 * quota / 1000;
        target.files().control().addTokenGrant(target.deviceIndex(), owed);
        log.info(
                "allocation={} device={} heartbeat was {} ms old; granted the {} ms its shims could spend meanwhile",
                target.allocationId(),
                target.deviceIndex(),
                (now - heartbeat) / 1_000_000,
                owed / 1_000_000);
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
    public void close() {
        loop.close();
    }
}
