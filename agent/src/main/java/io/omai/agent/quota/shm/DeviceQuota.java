package io.omai.agent.quota.shm;

import java.nio.charset.StandardCharsets;

/**
 * What the agent grants a container on one GPU: written into one {@code omai_control_device} record.
 *
 * @param uuid the GPU's UUID as NVML reports it ("GPU-..."); the shim matches devices by it
 * @param hostIndex the GPU's NVML index on the host (informational)
 * @param memoryLimitBytes hard memory limit, or {@link ShmLayout#MEMORY_UNLIMITED}
 * @param computeQuotaMilli share of the GPU's time, 1..1000
 * @param mode how the compute share is enforced
 */
public record DeviceQuota(String uuid, int hostIndex, long memoryLimitBytes, int computeQuotaMilli, ComputeMode mode) {
    public DeviceQuota {
        if (uuid == null || uuid.isBlank()) {
            throw new IllegalArgumentException("device uuid is empty; expected a GPU UUID such as GPU-<hex>");
        }
        int encoded = uuid.getBytes(StandardCharsets.US_ASCII).length;
        if (!StandardCharsets.US_ASCII.newEncoder().canEncode(uuid) || encoded >= ShmLayout.UUID_LEN) {
            throw new IllegalArgumentException(
                    "device uuid '" + uuid + "' is not ASCII of at most " + (ShmLayout.UUID_LEN - 1) + " characters");
        }
        if (hostIndex < 0) {
            throw new IllegalArgumentException("host index " + hostIndex + " of " + uuid + " is negative");
        }
        if (memoryLimitBytes < 0 && memoryLimitBytes != ShmLayout.MEMORY_UNLIMITED) {
            throw new IllegalArgumentException("memory limit " + memoryLimitBytes + " of " + uuid
                    + " is negative; expected bytes >= 0 or unlimited");
        }
        if (computeQuotaMilli < 1 || computeQuotaMilli > 1000) {
            throw new IllegalArgumentException(
                    "compute quota " + computeQuotaMilli + " of " + uuid + " is outside 1..1000 (milli of one GPU)");
        }
        if (mode == null) {
            throw new IllegalArgumentException("compute mode of " + uuid + " is missing");
        }
    }

    /** True when the memory limit is {@link ShmLayout#MEMORY_UNLIMITED}. */
    public boolean memoryUnlimited() {
        return memoryLimitBytes == ShmLayout.MEMORY_UNLIMITED;
    }
}
