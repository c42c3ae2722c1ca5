package io.omai.agent.gpu;

/**
 * One physical GPU as NVML describes it.
 *
 * @param index NVML index on the host
 * @param uuid "GPU-..." as NVML reports it; the shim matches devices by it
 * @param name product name
 * @param minorNumber the N of {@code /dev/nvidiaN}
 * @param memoryBytes total device memory
 * @param numaNode the NUMA node the GPU is attached to, or -1 when unknown
 */
public record GpuDevice(int index, String uuid, String name, int minorNumber, long memoryBytes, int numaNode) {
    public GpuDevice {
        if (uuid == null || uuid.isBlank()) {
            throw new IllegalArgumentException("GPU " + index + " has no UUID");
        }
        if (minorNumber < 0) {
            throw new IllegalArgumentException("GPU " + uuid + " has minor number " + minorNumber);
        }
        if (memoryBytes <= 0) {
            throw new IllegalArgumentException("GPU " + uuid + " reports " + memoryBytes + " bytes of memory");
        }
    }

    /** True when NVML told us the GPU's NUMA node. */
    public boolean hasNumaNode() {
        return numaNode >= 0;
    }
}
