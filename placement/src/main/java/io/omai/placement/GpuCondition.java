package io.omai.placement;

import java.util.Optional;

/**
 * A caller's own condition on a GPU for one container (a device expression, say), checked after health, tenancy
 * and capacity. Sees the GPU as earlier containers of the same demand left it.
 */
@FunctionalInterface
public interface GpuCondition {
    GpuCondition ANY = (container, gpu) -> Optional.empty();

    /** Why {@code container} may not go on {@code gpu}, or empty when it may. */
    Optional<String> refusal(ContainerDemand container, GpuState gpu);
}
