package io.omai.agent.gpu;

/**
 * Whether a GPU may be handed out, and why not.
 *
 * @param uuid the GPU
 * @param healthy false after an XID/ECC event or an NVML failure, until it stays clean for the debounce
 * @param reason why it is unhealthy (empty when healthy)
 */
public record GpuHealth(String uuid, boolean healthy, String reason) {
    public static GpuHealth healthy(String uuid) {
        return new GpuHealth(uuid, true, "");
    }

    public static GpuHealth unhealthy(String uuid, String reason) {
        return new GpuHealth(uuid, false, reason);
    }
}
