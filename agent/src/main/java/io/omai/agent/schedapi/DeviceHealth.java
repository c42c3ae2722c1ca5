package io.omai.agent.schedapi;

import java.util.Objects;

/** A GPU's health and, when unhealthy, why (e.g. "XID 79", "NVML lost the device"). */
public record GpuHealth(boolean healthy, String reason) {
    public static final GpuHealth HEALTHY = new GpuHealth(true, "");

    public GpuHealth {
        Objects.requireNonNull(reason, "reason");
        if (!healthy && reason.isBlank()) {
            throw new IllegalArgumentException("an unhealthy GPU needs a reason");
        }
    }

    public static GpuHealth unhealthy(String reason) {
        return new GpuHealth(false, reason);
    }
}
