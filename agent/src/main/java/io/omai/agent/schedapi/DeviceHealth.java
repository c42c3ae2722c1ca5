package io.omai.agent.schedapi;

import java.util.Objects;

/** A device's health and, when unhealthy, why (e.g. "XID 79", "NVML lost the device"). */
public record DeviceHealth(boolean healthy, String reason) {
    public static final DeviceHealth HEALTHY = new DeviceHealth(true, "");

    public DeviceHealth {
        Objects.requireNonNull(reason, "reason");
        if (!healthy && reason.isBlank()) {
            throw new IllegalArgumentException("an unhealthy device needs a reason");
        }
    }

    public static DeviceHealth unhealthy(String reason) {
        return new DeviceHealth(false, reason);
    }
}
