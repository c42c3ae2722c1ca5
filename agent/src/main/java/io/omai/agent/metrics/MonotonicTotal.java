package io.omai.agent.metrics;

/**
 * A counter fed from a value a container writes (its usage file): the counter only ever grows, whatever the file
 * says. Each reading adds the increase since the previous one; a value that went down (the file reset, or forged)
 * adds nothing and becomes the new base; an increase beyond what the container could physically have done since
 * the previous reading ({@code maxPerSecond} times the time passed, plus a second of slack) is cut to that bound.
 * So a forged file can at worst make its own counter grow at the physical maximum rate, never go backwards or
 * jump to 2^63.
 */
final class MonotonicTotal {
    private final double maxPerSecond;
    private long lastRaw;
    private long lastAtNanos;
    private double total;

    /**
     * Starts at the file's first reading, cut to what the container could have done in {@code ageNanos} (how long
     * its allocation has existed).
     */
    MonotonicTotal(double maxPerSecond, long raw, long ageNanos, long nowNanos) {
        this.maxPerSecond = maxPerSecond;
        this.lastRaw = raw;
        this.lastAtNanos = nowNanos;
        this.total = Math.min((double) Math.max(raw, 0), bound(Math.max(ageNanos, 0)));
    }

    /** Takes a new reading of the file's value; returns the counter's value. */
    double advance(long raw, long nowNanos) {
        long elapsed = Math.max(nowNanos - lastAtNanos, 0);
        if (raw > lastRaw) {
            double increase = (double) raw - (double) lastRaw;
            total += Math.min(increase, bound(elapsed));
        }
        lastRaw = raw;
        lastAtNanos = nowNanos;
        return total;
    }

    double total() {
        return total;
    }

    private double bound(long elapsedNanos) {
        return maxPerSecond * (elapsedNanos / 1e9 + 1);
    }
}
