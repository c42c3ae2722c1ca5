package io.omai.placement;

import java.util.Objects;

/**
 * What one container asks of the node.
 *
 * @param memoryBytes per GPU; 0 for the memory rule's default ({@link MilliGpu#defaultMemory})
 * @param vfResource the VF resource its VFs must come from (see {@link HcaState#resource}); empty: any HCA
 */
public record ContainerDemand(String name, int milli, long memoryBytes, int vfs, String vfResource) {
    public ContainerDemand(String name, int milli, long memoryBytes, int vfs) {
        this(name, milli, memoryBytes, vfs, "");
    }

    public ContainerDemand {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(vfResource, "vfResource");
        if (!MilliGpu.isValid(milli)) {
            throw new IllegalArgumentException("container '" + name + "': milli " + MilliGpu.describeInvalid(milli));
        }
        if (memoryBytes < 0 || vfs < 0) {
            throw new IllegalArgumentException(
                    "container '" + name + "': memory " + memoryBytes + " and VFs " + vfs + " must not be negative");
        }
    }

    public int gpuCount() {
        return MilliGpu.gpuCount(milli);
    }

    /** Milli on each GPU it takes. */
    public int milliPerGpu() {
        return MilliGpu.perGpu(milli);
    }

    /** Memory it takes on {@code gpu}: what it asked for, else the memory rule's share of that card. */
    public long memoryOn(GpuState gpu) {
        return memoryBytes > 0 ? memoryBytes : MilliGpu.defaultMemory(milli, gpu.memoryBytes());
    }
}
