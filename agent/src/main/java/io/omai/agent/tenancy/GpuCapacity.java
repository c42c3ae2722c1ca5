package io.omai.agent.tenancy;

import java.util.Set;

/**
 * What the reservation core needs to know about one GPU: its size and what running containers hold on it.
 * Implemented by the scheduler API's snapshot records; the allocation ledger is the source of the numbers.
 */
public interface GpuCapacity {
    String uuid();

    /** 1000 for a GPU shared through milli-GPUs. */
    int milliCapacity();

    /** Milli held by allocated (running or admitted) containers; reservations are not included. */
    int milliAllocated();

    long memoryBytes();

    long memoryAllocatedBytes();

    boolean healthy();

    /** Tenants of the allocated containers on this GPU. */
    Set<String> tenants();

    /** The driver's index; -1 where the source does not say. */
    default int index() {
        return -1;
    }

    /** The NUMA node; -1 when unknown. */
    default int numaNode() {
        return -1;
    }
}
