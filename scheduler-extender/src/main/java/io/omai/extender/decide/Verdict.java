package io.omai.extender.decide;

import io.omai.agent.schedapi.v1.ContainerAssignment;
import java.util.List;

/** One node's answer for one pod. */
public sealed interface Verdict {
    /**
     * The pod fits.
     *
     * @param score 0..10 (kube-scheduler's MaxExtenderPriority)
     * @param assignments where each container goes, as Reserve takes them
     * @param generation the node state generation the answer was computed from
     */
    record Fits(int score, List<ContainerAssignment> assignments, long generation) implements Verdict {
        public Fits {
            assignments = List.copyOf(assignments);
        }
    }

    /**
     * The pod does not fit.
     *
     * @param reason one line for kubectl describe
     * @param unresolvable evicting pods could not make it fit (kube-scheduler then skips preemption here)
     */
    record Fails(String reason, boolean unresolvable) implements Verdict {}
}
