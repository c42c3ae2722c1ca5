package io.omai.agent.schedapi;

import io.omai.agent.schedapi.expr.DeviceExpression;
import io.omai.placement.MilliGpu;
import java.util.Objects;
import java.util.Optional;

/**
 * One container's requirements in a Fit query, validated.
 *
 * @param memoryBytes per GPU; 0 for the default (proportional share or whole card)
 */
public record ContainerNeed(String name, int milli, long memoryBytes, int vfs, Optional<DeviceExpression> selector) {
    public ContainerNeed {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(selector, "selector");
        if (!MilliGpu.isValid(milli)) {
            throw new IllegalArgumentException("milli " + MilliGpu.describeInvalid(milli));
        }
    }

    public int gpuCount() {
        return MilliGpu.gpuCount(milli);
    }

    public long memoryOn(GpuSnapshot gpu) {
        return memoryBytes > 0 ? memoryBytes : MilliGpu.defaultMemory(milli, gpu.memoryBytes());
    }
}
