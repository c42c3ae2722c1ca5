package io.omai.agent.schedapi;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Remembers review verdicts for a short time, so a scheduler reserving many pods costs one TokenReview per token
 * and TTL rather than one per call. Keys are SHA-256 digests of the tokens (a heap dump shows no token); the
 * cache is bounded, dropping the least recently used verdict; failures to review are never remembered, so the
 * next call tries again.
 */
public final class CachedCallerReview implements CallerReview {
    private final CallerReview delegate;
    private final Duration ttl;
    private final int capacity;
    private final Clock clock;
    private final AtomicLong reviews = new AtomicLong();

    @GuardedBy("this")
    private final LinkedHashMap<String, Remembered> verdicts = new LinkedHashMap<>(16, 0.75f, true);

    private record Remembered(Verdict verdict, Instant until) {}

    public CachedCallerReview(CallerReview delegate, Duration ttl, int capacity, Clock clock) {
        if (ttl.isNegative() || ttl.isZero() || capacity < 1) {
            throw new IllegalArgumentException(
                    "a review cache needs a positive TTL and capacity, got " + ttl + " and " + capacity);
        }
        this.delegate = delegate;
        this.ttl = ttl;
        this.capacity = capacity;
        this.clock = clock;
    }

    @Override
    public Verdict review(String token) {
        String key = digest(token);
        Instant now = clock.instant();
        synchronized (this) {
            Remembered remembered = verdicts.get(key);
            if (remembered != null && now.isBefore(remembered.until())) {
                return remembered.verdict();
            }
        }
        // outside the lock: one slow API call must not hold up callers whose verdict is cached
        Verdict verdict = delegate.review(token);
        reviews.incrementAndGet();
        synchronized (this) {
            verdicts.put(key, new Remembered(verdict, now.plus(ttl)));
            if (verdicts.size() > capacity) {
                Map.Entry<String, Remembered> eldest =
                        verdicts.entrySet().iterator().next();
                verdicts.remove(eldest.getKey());
            }
        }
        return verdict;
    }

    /** How many reviews reached the delegate (cache misses that got an answer). */
    public long reviews() {
        return reviews.get();
    }

    synchronized int size() {
        return verdicts.size();
    }

    private static String digest(String token) {
        try {
            return HexFormat.of()
                    .formatHex(MessageDigest.getInstance("SHA-256").digest(token.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }
}
