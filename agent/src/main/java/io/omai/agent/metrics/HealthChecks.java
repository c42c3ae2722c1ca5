package io.omai.agent.metrics;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.LongSupplier;

/**
 * The conditions behind {@code /healthz} (liveness: the process and its loops are alive; a failure makes
 * kubelet restart the container) and {@code /readyz} (readiness: registered with kubelet and serving; a failure
 * only takes the pod out of the Service). Checks are added as parts of the agent start; until
 * {@link #markStarted()} readiness fails with "starting".
 */
public final class HealthChecks {
    private record Named(String name, HealthCheck check) {}

    private final List<Named> liveness = new CopyOnWriteArrayList<>();
    private final List<Named> readiness = new CopyOnWriteArrayList<>();
    private volatile String notReadyReason = "starting";

    /** A condition whose failure means the process is stuck and should be restarted. */
    public void addLiveness(String name, HealthCheck check) {
        liveness.add(new Named(requireName(name), check));
    }

    /** A condition whose failure means the agent should not receive work now. */
    public void addReadiness(String name, HealthCheck check) {
        readiness.add(new Named(requireName(name), check));
    }

    /** Every part of the agent is started: readiness now depends on the readiness checks alone. */
    public void markStarted() {
        notReadyReason = null;
    }

    /** The agent is stopping: not ready from now on, whatever the checks say. */
    public void markStopping() {
        notReadyReason = "stopping";
    }

    /** Empty when alive, else every failing liveness check as {@code name: problem}, joined by "; ". */
    public Optional<String> livenessProblem() {
        return failing(liveness);
    }

    /** Empty when ready, else why not, in one line. */
    public Optional<String> readinessProblem() {
        String reason = notReadyReason;
        if (reason != null) {
            return Optional.of(reason);
        }
        return failing(readiness);
    }

    private static Optional<String> failing(List<Named> checks) {
        List<String> problems = new ArrayList<>();
        for (Named named : checks) {
            Optional<String> problem;
            try {
                problem = named.check().problem();
            } catch (RuntimeException e) {
                problem = Optional.of("check failed: " + e);
            }
            problem.ifPresent(p -> problems.add(named.name() + ": " + p.replace('\n', ' ')));
        }
        return problems.isEmpty() ? Optional.empty() : Optional.of(String.join("; ", problems));
    }

    /**
     * A liveness check for a loop that counts its iterations: it fails once the count has not moved for
     * {@code maxStall}, measured between probes (no thread of its own).
     *
     * @param iterations the loop's iteration count, e.g. {@code ComputeControlLoop::ticks}
     */
    public static HealthCheck progress(LongSupplier iterations, Duration maxStall, LongSupplier nanoClock) {
        if (maxStall.isNegative() || maxStall.isZero()) {
            throw new IllegalArgumentException("max stall " + maxStall + " must be positive");
        }
        long maxStallNanos = maxStall.toNanos();
        long[] last = {iterations.getAsLong(), nanoClock.getAsLong()}; // count, when it last moved
        return () -> {
            synchronized (last) {
                long count = iterations.getAsLong();
                long now = nanoClock.getAsLong();
                if (count != last[0]) {
                    last[0] = count;
                    last[1] = now;
                    return Optional.empty();
                }
                long stalled = now - last[1];
                return stalled < maxStallNanos
                        ? Optional.empty()
                        : Optional.of(
                                "no iteration for " + Duration.ofNanos(stalled).toMillis() + " ms (at " + count
                                        + "; limit " + maxStall.toMillis() + " ms)");
            }
        };
    }

    private static String requireName(String name) {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("a health check needs a name (it appears in probe answers)");
        }
        return name;
    }
}
