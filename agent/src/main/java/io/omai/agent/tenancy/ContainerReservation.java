package io.omai.agent.tenancy;

import io.omai.placement.MilliGpu;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;

/**
 * The devices one container holds: {@code milli} below 1000 on one GPU, or {@code milli / 1000} whole GPUs, with
 * {@code memoryBytes} per GPU (0 in a request: the default, see {@link MilliGpu#defaultMemory}), and VFs.
 */
public record ContainerReservation(
        String name, List<String> gpuUuids, int milli, long memoryBytes, List<String> vfIds) {
    public ContainerReservation {
        Objects.requireNonNull(name, "name");
        gpuUuids = List.copyOf(gpuUuids);
        vfIds = List.copyOf(vfIds);
        if (!MilliGpu.isValid(milli)) {
            throw new IllegalArgumentException("container '" + name + "': milli " + MilliGpu.describeInvalid(milli));
        }
        if (gpuUuids.size() != MilliGpu.gpuCount(milli)) {
            throw new IllegalArgumentException("container '" + name + "': milli " + milli + " needs "
                    + MilliGpu.gpuCount(milli) + " GPU(s) but " + gpuUuids.size() + " were named");
        }
        if (new HashSet<>(gpuUuids).size() != gpuUuids.size()) {
            throw new IllegalArgumentException("container '" + name + "': GPU " + gpuUuids + " named twice");
        }
        if (memoryBytes < 0) {
            throw new IllegalArgumentException("container '" + name + "': memory " + memoryBytes + " is negative");
        }
        if (milli == 0 && memoryBytes != 0) {
            throw new IllegalArgumentException("container '" + name + "': memory without milli");
        }
    }

    /** Milli taken from each named GPU. */
    public int milliPerGpu() {
        return MilliGpu.perGpu(milli);
    }

    ContainerReservation withMemory(long resolvedMemoryBytes) {
        return new ContainerReservation(name, gpuUuids, milli, resolvedMemoryBytes, vfIds);
    }
}
