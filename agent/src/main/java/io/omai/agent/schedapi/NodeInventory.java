package io.omai.agent.schedapi;

import io.omai.agent.tenancy.Subscription;

/**
 * What the scheduler API needs from the node's allocation state: a consistent snapshot and a signal when it
 * changes. The allocation ledger implements it in the daemon; {@link StaticNodeInventory} in tests and
 * {@code simulate}.
 *
 * <p>Contract for implementations:
 * <ul>
 *   <li>{@link #snapshot()} is cheap (no I/O, no NVML call), never blocks for long, and returns an immutable
 *       snapshot whose allocations, health and free VFs are consistent with each other. It is called under the
 *       reservation book's lock, so it must not call into the book or wait on a thread that does.</li>
 *   <li>The snapshot's generation grows on every change.</li>
 *   <li>Listeners run after the change is visible through {@link #snapshot()}; they may run on any thread and
 *       must be fast (the scheduler API only marks its state dirty and publishes).</li>
 * </ul>
 */
public interface NodeInventory {
    NodeSnapshot snapshot();

    /** Runs {@code listener} after every change; close the subscription to stop. */
    Subscription onChange(Runnable listener);
}
