package io.omai.ibvf.config;

import java.time.Duration;

/**
 * How long to wait for VFs, their driver and RDMA devices after a change: {@code attempts} checks, {@code interval}
 * apart. The default (50 × 200 ms = 10 s) matches what sriov-network-operator found necessary for mlx5 resets.
 */
public record ReadinessPolicy(int attempts, Duration interval) {

    public static final ReadinessPolicy DEFAULT = new ReadinessPolicy(50, Duration.ofMillis(200));

    public ReadinessPolicy {
        if (attempts < 1) {
            throw new IllegalArgumentException("readiness attempts must be >= 1, got " + attempts);
        }
        if (interval.isNegative()) {
            throw new IllegalArgumentException("readiness interval must not be negative, got " + interval);
        }
    }

    public Duration total() {
        return interval.multipliedBy(attempts - 1L);
    }
}
