package io.omai.agent.deviceplugin;

import io.omai.ibvf.alloc.GpuPlacement;
import java.util.List;

/**
 * The GPUs of the container kubelet is admitting right now, so the VF plugin can prefer VFs near them. kubelet's
 * GetPreferredAllocation names neither pod nor container, so this is a best guess; empty when it cannot tell.
 */
@FunctionalInterface
public interface GpuPairing {
    GpuPairing UNKNOWN = List::of;

    List<GpuPlacement> gpusOfContainerBeingAdmitted();
}
