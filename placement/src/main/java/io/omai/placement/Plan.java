package io.omai.placement;

import java.util.List;

/**
 * Where a pod's containers go, or why they cannot.
 *
 * @param placements one per container in demand order when feasible; empty otherwise
 * @param refusals when infeasible: for the container that did not fit, a reason per GPU it could not use and
 *     (gpuUuid "") one for the node
 * @param score 0..100 when feasible (see {@link Planner}), 0 otherwise
 */
public record Plan(boolean feasible, int score, List<Placement> placements, List<Refusal> refusals) {
    public Plan {
        placements = List.copyOf(placements);
        refusals = List.copyOf(refusals);
    }

    /**
     * One container's place.
     *
     * @param memoryBytes per GPU, resolved: the smallest of its GPUs' when it asked for none
     */
    public record Placement(String container, List<String> gpuUuids, int milli, long memoryBytes, List<String> vfIds) {
        public Placement {
            gpuUuids = List.copyOf(gpuUuids);
            vfIds = List.copyOf(vfIds);
        }
    }

    /** Why a container cannot go on a GPU, or (gpuUuid "") on the node at all. */
    public record Refusal(String container, String gpuUuid, String message) {}

    static Plan infeasible(List<Refusal> refusals) {
        return new Plan(false, 0, List.of(), refusals);
    }
}
