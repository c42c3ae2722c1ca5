package io.omai.agent.schedapi;

import io.omai.agent.schedapi.expr.DeviceExpression;
import io.omai.placement.MilliGpu;
import java.util.Objects;
import java.util.Optional;

/**
 * One container's requirements in a Fit query, validated.
 *
 * @param memoryBytes per GPU; 0 for the default (proportional share or whole card)
 * @param vfResource the VF resource its VFs come from, e.g. omai.io/ib-vf
 * @param init an init container: runs alone before the app containers, so it needs room only by itself
 */
public record ContainerNeed(
        String name,
        int milli,
        long memoryBytes,
        int vfs,
        Optional<DeviceExpression> selector,
        String vfResource,
        boolean init) {
    /** An app container taking VFs from the default resource. */
    public ContainerNeed(String name, int milli, long memoryBytes, int vfs, Optional<DeviceExpression> selector) {
        this(name, milli, memoryBytes, vfs, selector, HcaSnapshot.DEFAULT_VF_RESOURCE, false);
    }

    public ContainerNeed {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(selector, "selector");
        Objects.requireNonNull(vfResource, "vfResource");
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
