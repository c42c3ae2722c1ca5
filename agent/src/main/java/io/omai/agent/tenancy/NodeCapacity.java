package io.omai.agent.tenancy;

import java.util.List;
import java.util.Set;

/** A consistent view of the node's devices and allocations, without reservations. */
public interface NodeCapacity {
    String nodeName();

    List<? extends GpuCapacity> gpus();

    /** Every VF id the node knows. */
    Set<String> vfIds();

    /** VF ids not allocated to a container (reservations are not subtracted here). */
    Set<String> freeVfIds();
}
