package io.omai.agent.tenancy;

import java.util.Set;

/**
 * The node's one capacity model: what the ledger's allocations hold per GPU (milli, memory, tenants), read at the
 * moment of asking. The reservation book reads it for Reserve and the admission gate for Allocate, both under
 * the book's lock, so the two can never both hand out the same capacity.
 */
@FunctionalInterface
public interface CapacityModel {
    /**
     * The node now, leaving out the allocations in {@code departed}: allocations whose device IDs kubelet is
     * handing out again, whose containers are therefore gone although reconciliation has not released them yet.
     */
    NodeCapacity read(Set<String> departed);
}
