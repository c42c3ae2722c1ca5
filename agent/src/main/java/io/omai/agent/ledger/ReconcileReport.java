package io.omai.agent.ledger;

import java.util.List;

/**
 * What one reconciliation with PodResources changed.
 *
 * @param released allocations no container holds any more; their files are removed
 * @param adopted allocations containers hold that the ledger did not know (e.g. after a lost checkpoint)
 * @param ownersLearned allocations whose pod/container became known
 * @param orphansRemoved names in the allocations directory no allocation accounted for, removed
 */
public record ReconcileReport(
        List<Allocation> released,
        List<Allocation> adopted,
        List<Allocation> ownersLearned,
        List<String> orphansRemoved) {
    public boolean changedAnything() {
        return !released.isEmpty() || !adopted.isEmpty() || !ownersLearned.isEmpty() || !orphansRemoved.isEmpty();
    }
}
