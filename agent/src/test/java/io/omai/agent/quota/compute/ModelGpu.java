package io.omai.agent.quota.compute;

import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.ShmLayout;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * A deterministic discrete-time model of one time-sliced GPU, containers whose shims spend tokens per launch,
 * and the controller ticking every period. It lets the control law be checked exactly, with no processes and no
 * wall-clock noise; the process-level harness checks the same cases against the real shim and simulated driver.
 */
final class ModelGpu {
    static final long STEP_NS = 50_000;

    static final class Container {
        final String id;
        final int quota;
        final ComputeMode mode;
        final long kernelNs;
        long startsAtNs;
        long grantNs;
        long consumedNs;
        long launches;
        long throttledNs;
        long launchCostNs = ShmLayout.DEFAULT_LAUNCH_COST_NS;
        long remainingNs; // of the kernel in flight, 0 if none
        long busyThisPeriodNs;
        long busyThisWindowNs;

        Container(String id, int quota, ComputeMode mode, long kernelNs, long startsAtNs) {
            this.id = id;
            this.quota = quota;
            this.mode = mode;
            this.kernelNs = kernelNs;
            this.startsAtNs = startsAtNs;
        }
    }

    private final ComputeController controller;
    private final List<Container> containers = new ArrayList<>();
    private final Deque<Container> queue = new ArrayDeque<>();
    private long nowNs;

    ModelGpu(long periodNs) {
        controller = new ComputeController(periodNs);
    }

    Container add(String id, int quota, ComputeMode mode, long kernelNs, long startsAtNs) {
        Container c = new Container(id, quota, mode, kernelNs, startsAtNs);
        containers.add(c);
        return c;
    }

    ComputeController controller() {
        return controller;
    }

    /** Runs until {@code untilNs}; returns each container's share of that window (0..1). */
    double[] runWindow(long untilNs) {
        long windowStart = nowNs;
        containers.forEach(c -> c.busyThisWindowNs = 0);
        while (nowNs < untilNs) {
            step();
        }
        double[] shares = new double[containers.size()];
        for (int i = 0; i < shares.length; i++) {
            shares[i] = (double) containers.get(i).busyThisWindowNs / (untilNs - windowStart);
        }
        return shares;
    }

    private void step() {
        for (Container c : containers) {
            if (nowNs < c.startsAtNs || c.remainingNs > 0) {
                continue;
            }
            // The shim: spend tokens if the grant allows, else wait (throttled).
            if (c.consumedNs < c.grantNs) {
                c.consumedNs += c.launchCostNs;
                c.launches++;
                c.remainingNs = c.kernelNs;
                queue.addLast(c);
            } else {
                c.throttledNs += STEP_NS;
            }
        }
        // The GPU runs one kernel at a time, in launch order.
        long budget = STEP_NS;
        while (budget > 0 && !queue.isEmpty()) {
            Container head = queue.peekFirst();
            long run = Math.min(budget, head.remainingNs);
            head.remainingNs -= run;
            head.busyThisPeriodNs += run;
            head.busyThisWindowNs += run;
            budget -= run;
            if (head.remainingNs == 0) {
                queue.removeFirst();
            }
        }
        nowNs += STEP_NS;
        if (nowNs % controller.periodNs() == 0) {
            tick();
        }
    }

    private void tick() {
        List<ContainerSample> samples = new ArrayList<>();
        List<Container> present = new ArrayList<>();
        for (Container c : containers) {
            if (nowNs < c.startsAtNs) {
                continue;
            }
            present.add(c);
            samples.add(new ContainerSample(
                    c.id, c.quota, c.mode, c.grantNs, c.consumedNs, c.launches, c.throttledNs, c.busyThisPeriodNs));
            c.busyThisPeriodNs = 0;
        }
        List<GrantDecision> decisions = controller.tick(samples);
        for (int i = 0; i < decisions.size(); i++) {
            Container c = present.get(i);
            GrantDecision d = decisions.get(i);
            if (d.grantNs() < c.grantNs) {
                throw new AssertionError("grant of " + c.id + " went down: " + c.grantNs + " -> " + d.grantNs());
            }
            c.grantNs = d.grantNs();
            c.launchCostNs = d.launchCostNs();
        }
    }
}
