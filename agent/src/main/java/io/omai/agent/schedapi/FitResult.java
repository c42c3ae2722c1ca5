package io.omai.agent.schedapi;

import io.omai.agent.tenancy.ContainerReservation;
import java.util.List;

/**
 * The answer to a Fit query.
 *
 * @param assignments one per container in request order when feasible, with memory resolved; empty otherwise
 * @param reasons why not, when infeasible
 * @param score 0..100 when feasible, 0 otherwise
 */
public record FitResult(boolean feasible, int score, List<ContainerReservation> assignments, List<Reason> reasons) {
    public FitResult {
        assignments = List.copyOf(assignments);
        reasons = List.copyOf(reasons);
    }

    /** Why a container cannot go on a GPU, or (gpuUuid empty) on the node at all. */
    public record Reason(String container, String gpuUuid, String message) {}

    static FitResult infeasible(List<Reason> reasons) {
        return new FitResult(false, 0, List.of(), reasons);
    }
}
