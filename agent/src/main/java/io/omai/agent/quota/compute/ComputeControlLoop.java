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
    /**
     * A container that did nothing since its last full sample is still sampled in full (every slot of its usage
     * file) at least this often, in ticks: the quick check trusts counters the container writes, so a container
     * that forges them to look idle loses at most this many periods of its own grants.
     */
    static final int FULL_SAMPLE_EVERY = 10;
    /**
     * Once no container on the node did anything for {@link #FULL_SAMPLE_EVERY} steps in a row, the loop's own
     * thread steps only every this many periods (heartbeats then every 500 ms, well inside the shim's 2 s): an
     * idle node costs a fifth of the CPU, and a container that starts launching waits at most this many periods
     * (beyond the period's grant it has banked) before the loop is back to every period.
     */
    static final int IDLE_STEP_EVERY = 5;

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

    /** What each container's last full sample found ({@code allocation#device} → it). */
    @GuardedBy("this")
    private final Map<String, LastSample> lastSamples = new HashMap<>();

    /** Steps in a row in which no container did anything (see {@link #sample}). */
    @GuardedBy("this")
    private int idleSteps;
    /** Periods skipped since the last step while the node is idle. */
    @GuardedBy("this")
    private int skippedPeriods;

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
                SupervisedLoop.start("compute-control", period, period, Duration.ofSeconds(10), this::scheduledStep));
    }

    /**
     * One control step over every GPU, taken to be exactly one period after the previous one; public so tests and
     * the simulator can drive it deterministically. The loop's own thread ({@link #start}) grants instead for the
     * time that really passed since the previous step, so late steps lose no container's time.
     */
    public synchronized void tick() {
        step(false);
    }

    /** What the loop's own thread runs each period; package-private so a test can count what it skips. */
    synchronized void scheduledStep() {
        step(true);
    }

    private synchronized void step(boolean timed) {
        if (timed && idleSteps >= FULL_SAMPLE_EVERY && ++skippedPeriods < IDLE_STEP_EVERY) {
            return;
        }
        skippedPeriods = 0;
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
        boolean[] activity = {false};
        for (Map.Entry<String, List<ComputeTarget>> gpu : byGpu.entrySet()) {
            tickGpu(gpu.getKey(), gpu.getValue(), timed, activity);
        }
        failures.retain(subjects);
        lastSamples.keySet().retainAll(subjects);
        idleSteps = activity[0] ? 0 : idleSteps + 1;
        lastTickNanos = System.nanoTime() - started;
        ticks++;
        tickDurationListener.accept(lastTickNanos);
    }

    /** @param activity set to true when a container on this GPU did something, or could not be checked */
    @GuardedBy("this")
    private void tickGpu(String uuid, List<ComputeTarget> targets, boolean timed, boolean[] activity) {
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
        Map<String, LastSample> last = lastSamples;
        for (ComputeTarget target : targets) {
            if (target.frozen()) {
                continue; // no sample, no grant: the grant stays where it was frozen
            }
            activity[0] |= !last.containsKey(subject(target)); // new, or its last sample failed
            failures.run(subject(target), () -> {
                ContainerSample sample = sample(target, busy, last, activity);
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

    /**
     * What the last full sample of a container found: the control file's epoch it was read under, the sample
     * (null: compute not enforced), the device's usage totals, the host pids of its slots (all of them known).
     */
    private record LastSample(
            long controlEpoch,
            ContainerSample sample,
            UsageSnapshot.DeviceTotals totals,
            List<Integer> hostPids,
            boolean allPidsMapped,
            int quietTicks) {
        LastSample quieter() {
            return new LastSample(controlEpoch, sample, totals, hostPids, allPidsMapped, quietTicks + 1);
        }
    }

    /**
     * This tick's sample of one container, or null when its compute is not enforced (nothing to grant).
     *
     * <p>Most containers are idle most of the time (no process, or none launching), and reading every slot of
     * every usage file each period was most of the agent's idle CPU. So when the control file is unchanged since
     * the last full sample (same epoch), the device's totals are too and NVML saw none of the container's known
     * processes busy, the last sample is reused with the current grant: the same sample a full read would give,
     * a slot attached or freed since then aside, which matters only for NVML attribution once it launches (and a
     * launch changes the totals). Every {@link #FULL_SAMPLE_EVERY} ticks the full read is taken regardless.
     */
    private static ContainerSample sample(
            ComputeTarget target,
            Map<Integer, Long> busyByPid,
            Map<String, LastSample> lastSamples,
            boolean[] activity) {
        String subject = subject(target);
        long epoch = target.files().control().epoch();
        LastSample last = lastSamples.get(subject);
        if (last != null && last.controlEpoch() == epoch && (epoch & 1) == 0) {
            if (last.sample() == null) {
                return null; // not enforced then, and the control file has not changed since
            }
            if (last.quietTicks() < FULL_SAMPLE_EVERY
                    && last.allPidsMapped()
                    && noneBusy(last.hostPids(), busyByPid)
                    && target.files().usage().deviceTotals(target.deviceIndex()).equals(last.totals())) {
                lastSamples.put(subject, last.quieter());
                ContainerSample s = last.sample();
                return new ContainerSample(
                        s.allocationId(),
                        s.quotaMilli(),
                        s.mode(),
                        target.files().control().tokenGrant(target.deviceIndex()),
                        s.consumedNs(),
                        s.launches(),
                        s.throttledNs(),
                        busyByPid == null ? ContainerSample.UNMEASURED : 0);
            }
        }
        lastSamples.remove(subject);
        boolean sawItIdle = last != null && last.allPidsMapped() && noneBusy(last.hostPids(), busyByPid);
        ControlSnapshot control;
        try {
            control = target.files().control().read();
        } catch (RegionFormatException e) {
            throw new IllegalStateException("control file unreadable: " + e.getMessage(), e);
        }
        if (!control.computeEnforced()
                || target.deviceIndex() >= control.devices().size()) {
            lastSamples.put(subject, new LastSample(control.epoch(), null, null, List.of(), false, 0));
            activity[0] |= last == null || last.controlEpoch() != control.epoch();
            return null;
        }
        ControlSnapshot.Device device = control.devices().get(target.deviceIndex());
        UsageSnapshot usage = target.files().usage().read();
        if (target.deviceIndex() >= usage.devices().size()) {
            throw new IllegalStateException("usage file has " + usage.devices().size() + " device totals, expected"
                    + " more than " + target.deviceIndex());
        }
        UsageSnapshot.DeviceTotals totals = usage.devices().get(target.deviceIndex());
        ContainerSample sample = new ContainerSample(
                target.allocationId(),
                device.computeQuotaMilli(),
                device.mode(),
                device.tokenGrantNs(),
                totals.tokensConsumedNs(),
                totals.launches(),
                totals.throttledNs(),
                measured(usage, busyByPid));
        List<Integer> hostPids = new ArrayList<>(usage.slots().size());
        boolean allPidsMapped = true;
        for (UsageSnapshot.Slot slot : usage.slots()) {
            hostPids.add(slot.hostPid());
            allPidsMapped &= slot.hostPid() != 0;
        }
        lastSamples.put(subject, new LastSample(control.epoch(), sample, totals, hostPids, allPidsMapped, 0));
        activity[0] |= !(sawItIdle
                && last.sample() != null
                && last.controlEpoch() == control.epoch()
                && totals.equals(last.totals()));
        return sample;
    }

    private static boolean noneBusy(List<Integer> hostPids, Map<Integer, Long> busyByPid) {
        if (busyByPid == null) {
            return true;
        }
        for (int pid : hostPids) {
            if (busyByPid.getOrDefault(pid, 0L) > 0) {
                return false;
            }
        }
        return true;
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
        long lastHeartbeat = target.files().control().heartbeatNs();
        if (lastHeartbeat == 0 || now - lastHeartbeat <= STALE_MIN_NS) {
            return; // fresh (the threshold is never below STALE_MIN_NS): the usual case, without reading the file
        }
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
