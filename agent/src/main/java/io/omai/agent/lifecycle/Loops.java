package io.omai.agent.lifecycle;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Every background loop of one agent, for {@code /healthz}: a loop that misses its deadline (no completed pass
 * for that long) or has stopped makes {@link #problem} non-empty. Loops come in two shapes: scheduled passes
 * ({@link SupervisedLoop}, registered with {@link #add}) and loops that run on their own thread and count their
 * passes ({@link #watch}); the latter guard their thread's body with {@link #restarting}.
 */
public final class Loops {
    private static final Logger log = LoggerFactory.getLogger(Loops.class);
    /** How long a loop body that threw waits before it runs again: a failing loop must not spin. */
    static final long RESTART_PAUSE_MILLIS = 1_000;

    private final List<LoopState> loops = new CopyOnWriteArrayList<>();
    private final LongSupplier nanoClock;

    public Loops() {
        this(System::nanoTime);
    }

    Loops(LongSupplier nanoClock) {
        this.nanoClock = nanoClock;
    }

    /** Adds a loop to the ones {@code /healthz} judges. */
    public <T extends LoopState> T add(T loop) {
        loops.add(loop);
        return loop;
    }

    /**
     * A loop that counts its own passes: it misses its deadline once the count has not moved for
     * {@code deadline}, measured between probes.
     */
    public LoopState watch(String name, LongSupplier passes, Duration deadline) {
        requirePositive(name, deadline);
        long deadlineNanos = deadline.toNanos();
        long[] last = {passes.getAsLong(), nanoClock.getAsLong()}; // count, when it last moved
        return add(new LoopState() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public long lastPassNanos() {
                synchronized (last) {
                    long count = passes.getAsLong();
                    if (count != last[0]) {
                        last[0] = count;
                        last[1] = nanoClock.getAsLong();
                    }
                    return last[1];
                }
            }

            @Override
            public Optional<String> problem(long now) {
                synchronized (last) {
                    long count = passes.getAsLong();
                    if (count != last[0]) {
                        last[0] = count;
                        last[1] = now;
                        return Optional.empty();
                    }
                    long idle = now - last[1];
                    return idle < deadlineNanos
                            ? Optional.empty()
                            : Optional.of("no pass for " + idle / 1_000_000 + " ms (deadline " + deadline.toMillis()
                                    + " ms, " + count + " passes)");
                }
            }
        });
    }

    /** Empty when every loop is within its deadline; else each late or stopped loop as {@code name: problem}. */
    public Optional<String> problem() {
        long now = nanoClock.getAsLong();
        List<String> problems = new ArrayList<>();
        for (LoopState loop : loops) {
            loop.problem(now).ifPresent(p -> problems.add(loop.name() + ": " + p));
        }
        return problems.isEmpty() ? Optional.empty() : Optional.of(String.join("; ", problems));
    }

    /** Seconds since each loop's last completed pass (the time of a probe or scrape that saw it move, for loops that count their passes), by loop name. */
    public java.util.Map<String, Double> lastPassAges() {
        long now = nanoClock.getAsLong();
        java.util.Map<String, Double> ages = new java.util.LinkedHashMap<>();
        for (LoopState loop : loops) {
            ages.put(loop.name(), Math.max(now - loop.lastPassNanos(), 0) / 1e9);
        }
        return ages;
    }

    /** The loops registered so far. */
    public List<LoopState> all() {
        return List.copyOf(loops);
    }

    /**
     * Wraps the body of a loop that runs on its own thread ({@code while (running) ...}) so that it never dies
     * silently: whatever it throws (an {@link Error} included) is logged as {@code event=loop_failed} and the
     * body runs again after a pause, for as long as {@code running} holds and the thread is not interrupted.
     */
    public static Runnable restarting(String name, Runnable body, BooleanSupplier running) {
        return () -> {
            while (running.getAsBoolean() && !Thread.currentThread().isInterrupted()) {
                try {
                    body.run();
                    return; // the body ended on its own: the loop was stopped
                } catch (Throwable e) {
                    log.error(
                            "event=loop_failed loop={} error=\"{}\" action=restart_in_{}ms",
                            name,
                            e,
                            RESTART_PAUSE_MILLIS,
                            e);
                }
                try {
                    Thread.sleep(RESTART_PAUSE_MILLIS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        };
    }

    static void requirePositive(String name, Duration deadline) {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("a loop needs a name (it appears in logs and probe answers)");
        }
        if (deadline.isNegative() || deadline.isZero()) {
            throw new IllegalArgumentException("deadline " + deadline + " of loop " + name + " must be positive");
        }
    }
}
