package io.omai.agent.quota.compute;

import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.ShmLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The compute controller of one physical GPU. Once per period it turns what every container on the GPU did
 * into new grants: GPU time each container's shim may spend before its launches wait.
 *
 * <p>The currency is GPU time, never SM or block counts, so no step depends on the GPU's size (the root of
 * HAMi-core's oscillation, #274/#314). The shim cannot see how long an asynchronous kernel runs; it charges a
 * per-launch cost, and the controller keeps that cost equal to the GPU time NVML measured per launch. A
 * container whose kernels are longer than charged therefore pays more next period: that calibration is the
 * feedback loop.
 *
 * <ul>
 *   <li><b>Hard cap:</b> each period adds {@code quota × period} to the grant (for a late step, quota × the time
 *       that passed, up to two periods). The grant may run ahead of what was consumed by at most one step's
 *       share, so an idle container cannot bank time for a burst.
 *   <li><b>Work-conserving:</b> the same, plus a share of the GPU's idle time. The controller keeps a small
 *       headroom of the period idle; borrowed time grows by half the excess idle time per period and is cut
 *       multiplicatively (halved, minus the shortfall) as soon as the headroom is used while a container that
 *       does not borrow runs, which returns it to others within a few periods.
 * </ul>
 *
 * <p>Not thread-safe: one control loop thread owns each controller.
 */
public final class ComputeController {
    /** Fraction of the period kept idle so that a newcomer's kernels find the GPU free at once. */
    static final double HEADROOM = 0.04;
    /** Weight of the newest period in the smoothed GPU time and launch count the launch cost is taken from. */
    static final double COST_SMOOTHING = 0.3;

    static final long MIN_LAUNCH_COST_NS = 1_000;
    /** A tick later than this many periods grants for this many: a long stall is not banked as a burst. */
    static final double MAX_CATCH_UP = 2.0;

    private final long periodNs;
    private final Map<String, History> history = new HashMap<>();
    /** GPU time per period lent to work-conserving containers, shared in proportion to their quotas. */
    private long borrowedNs;

    private static final class History {
        long consumedNs;
        long launches;
        long throttledNs;
        double launchCostNs = ShmLayout.DEFAULT_LAUNCH_COST_NS;
        boolean seen;
        /** Its entitlement per period at the last step, loan included. */
        long lastPeriodTargetNs;
        /** Wants more than its share: it waited for tokens, or used up a loan it had. */
        boolean hungry;
        /** Smoothed GPU time and launches per period; their ratio is the launch cost. */
        double measuredNsAverage;

        double launchesAverage;

        /**
         * The cost is the ratio of the smoothed sums, not a smoothed ratio: a launch is counted in the period
         * it was charged (a throttled one before it waits) while its kernel's GPU time falls where it runs, so
         * a period's own ratio swings (2 launches over 60 ms, then 4) and the mean of such ratios is biased
         * upwards (Jensen): a container of 20 ms kernels was charged 22 ms and ran 8 % short of its quota.
         * A window shorter than a period (the catch-up step after a late one) weighs in proportion to its length.
         */
        void calibrate(long measuredNs, long launchCount, long periodNs, double scale) {
            if (launchesAverage == 0 && measuredNsAverage == 0) {
                measuredNsAverage = measuredNs;
                launchesAverage = launchCount;
            } else {
                double weight = COST_SMOOTHING * Math.min(1.0, scale);
                measuredNsAverage += weight * (measuredNs - measuredNsAverage);
                launchesAverage += weight * (launchCount - launchesAverage);
            }
            if (launchesAverage > 0 && measuredNsAverage > 0) {
                launchCostNs = Math.clamp(measuredNsAverage / launchesAverage, MIN_LAUNCH_COST_NS, (double) periodNs);
            }
        }
    }

    public ComputeController(long periodNs) {
        if (periodNs < 1_000_000) {
            throw new IllegalArgumentException("control period " + periodNs + " ns is below 1 ms");
        }
        this.periodNs = periodNs;
    }

    public long periodNs() {
        return periodNs;
    }

    /** GPU time per period currently lent to work-conserving containers. */
    public long borrowedNs() {
        return borrowedNs;
    }

    /** One control step, exactly one period after the previous one. */
    public List<GrantDecision> tick(List<ContainerSample> samples) {
        return tick(samples, periodNs);
    }

    /**
     * One control step over every container now on this GPU. Containers absent from the list are forgotten.
     *
     * @param elapsedNs time since the previous step, the window the samples cover. A late step grants for the
     *     time that really passed (up to {@link #MAX_CATCH_UP} periods) and the catch-up step a scheduler runs
     *     right after it for the little that passed since, so a stalled control thread neither loses containers'
     *     time nor reads a long window's busy time as an overloaded period (which would cut loans).
     */
    public List<GrantDecision> tick(List<ContainerSample> samples, long elapsedNs) {
        double scale = Math.clamp((double) elapsedNs / periodNs, 0.0, MAX_CATCH_UP);
        Set<String> present = new HashSet<>();
        long busyNs = 0;
        long borrowersBusyNs = 0;
        long borrowerShareNs = 0;
        long hungryBorrowerQuota = 0;
        for (ContainerSample s : samples) {
            present.add(s.allocationId());
            History h = history.computeIfAbsent(s.allocationId(), id -> new History());
            long dConsumed = h.seen ? Math.max(0, s.consumedNs() - h.consumedNs) : 0;
            long dLaunches = h.seen ? Math.max(0, s.launches() - h.launches) : 0;
            long dThrottled = h.seen ? Math.max(0, s.throttledNs() - h.throttledNs) : 0;
            long measured = s.measuredGpuNs() == ContainerSample.UNMEASURED ? dConsumed : s.measuredGpuNs();
            if (s.measuredGpuNs() != ContainerSample.UNMEASURED && h.seen && (dLaunches > 0 || measured > 0)) {
                h.calibrate(measured, dLaunches, periodNs, scale);
            }
            h.consumedNs = s.consumedNs();
            h.launches = s.launches();
            h.throttledNs = s.throttledNs();
            h.seen = true;
            busyNs += measured;
            // A borrower that spent its whole loan without waiting still wants it: dropping the loan then would
            // make it wait next period and borrow again, halving what it gets for nothing.
            long perPeriod = scale > 0 ? Math.round(measured / scale) : measured;
            boolean spentItsLoan = h.lastPeriodTargetNs > share(s)
                    && perPeriod >= h.lastPeriodTargetNs - Math.round(periodNs * HEADROOM);
            h.hungry = s.mode() == ComputeMode.WORK_CONSERVING && (dThrottled > 0 || spentItsLoan);
            if (h.hungry) {
                hungryBorrowerQuota += s.quotaMilli();
                borrowerShareNs += share(s);
                borrowersBusyNs += measured;
            }
        }
        history.keySet().retainAll(present);
        if (scale >= 0.5) {
            adjustBorrowing(
                    Math.round(busyNs / scale),
                    Math.round((busyNs - borrowersBusyNs) / scale),
                    borrowerShareNs,
                    hungryBorrowerQuota);
        } // else: too short a window to judge the GPU's idle time by; the loan holds

        List<GrantDecision> decisions = new ArrayList<>(samples.size());
        for (ContainerSample s : samples) {
            History h = history.get(s.allocationId());
            long perPeriod = share(s);
            if (h.hungry && hungryBorrowerQuota > 0) {
                perPeriod += borrowedNs * s.quotaMilli() / hungryBorrowerQuota;
            }
            h.lastPeriodTargetNs = perPeriod;
            long target = Math.round(perPeriod * scale);
            // Never let the grant run more than one period's entitlement ahead of what was spent.
            long ceiling = s.consumedNs() + target;
            long grant = Math.max(s.grantNs(), Math.min(s.grantNs() + target, ceiling));
            decisions.add(new GrantDecision(s.allocationId(), grant, Math.round(h.launchCostNs), target));
        }
        return decisions;
    }

    private long share(ContainerSample s) {
        return periodNs * s.quotaMilli() / 1000;
    }

    /**
     * Additive increase while more than the headroom stays idle, multiplicative decrease once it is used: a
     * newcomer's demand shows up as the headroom disappearing, and the lent time halves every period until it
     * is back. Only work-conserving containers that waited for tokens in the last period, or spent all of a loan
     * they had, borrow.
     */
    private void adjustBorrowing(long busyNs, long othersBusyNs, long borrowerShareNs, long hungryBorrowerQuota) {
        long headroom = Math.round(periodNs * HEADROOM);
        long idle = periodNs - busyNs;
        // Others' unused shares are lendable too; their comeback shows up as the headroom being used.
        long lendable = Math.max(0, periodNs - headroom - borrowerShareNs);
        if (hungryBorrowerQuota == 0) {
            borrowedNs = Math.min(borrowedNs, lendable);
            if (busyNs > periodNs - headroom) {
                borrowedNs /= 2;
            }
            return;
        }
        if (idle > headroom) {
            borrowedNs += (idle - headroom) / 2;
        } else if (idle < headroom / 2 && othersBusyNs > 0) {
            // Only for someone else: borrowers alone overshoot the headroom by a kernel or so now and then (a
            // launch may start with any token left), and there is nobody to give the time back to.
            borrowedNs = borrowedNs / 2 - (headroom - idle);
        }
        // Between half the headroom and the headroom: hold, so measurement jitter does not halve the loan.
        borrowedNs = Math.clamp(borrowedNs, 0, lendable);
    }
}
