package io.omai.extender.decide;

import io.omai.extender.config.ScoringPolicy;
import io.omai.placement.GpuState;
import io.omai.placement.HcaState;
import io.omai.placement.MilliGpu;
import io.omai.placement.NodeState;
import io.omai.placement.Plan;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/** Prioritize's 0..10 for a node from the plan the pod would get there, by the configured {@link ScoringPolicy}. */
final class Scoring {
    static final int MAX_EXTENDER_PRIORITY = 10;

    private Scoring() {}

    static int score(NodeState node, Plan plan, ScoringPolicy policy) {
        Map<String, Integer> used = new HashMap<>();
        int capacity = 0;
        int usedBefore = 0;
        for (GpuState gpu : node.gpus()) {
            used.put(gpu.uuid(), gpu.milliUsed());
            if (gpu.healthy()) {
                capacity += MilliGpu.PER_GPU;
                usedBefore += Math.min(MilliGpu.PER_GPU, gpu.milliUsed());
            }
        }
        Map<String, Integer> vfNuma = new HashMap<>();
        for (HcaState hca : node.hcas()) {
            hca.vfIds().forEach(vf -> vfNuma.put(vf, hca.numaNode()));
        }
        Set<String> chosen = new LinkedHashSet<>();
        int added = 0;
        int vfContainers = 0;
        int aligned = 0;
        for (Plan.Placement placement : plan.placements()) {
            int each = MilliGpu.perGpu(placement.milli());
            for (String uuid : placement.gpuUuids()) {
                used.merge(uuid, each, Integer::sum);
                chosen.add(uuid);
                added += each;
            }
            if (!placement.vfIds().isEmpty()) {
                vfContainers++;
                int gpuNuma = placement.gpuUuids().isEmpty()
                        ? -1
                        : node.gpu(placement.gpuUuids().getFirst())
                                .map(GpuState::numaNode)
                                .orElse(-1);
                if (gpuNuma < 0 || placement.vfIds().stream().allMatch(vf -> vfNuma.getOrDefault(vf, -2) == gpuNuma)) {
                    aligned++;
                }
            }
        }
        double gpuFullness = chosen.isEmpty()
                ? 0
                : chosen.stream()
                                .mapToDouble(uuid -> Math.min(MilliGpu.PER_GPU, used.get(uuid)))
                                .sum()
                        / (MilliGpu.PER_GPU * (double) chosen.size());
        double nodeFullness = capacity == 0 ? 0 : Math.min(1.0, (usedBefore + added) / (double) capacity);
        double alignment = vfContainers == 0 ? 1 : aligned / (double) vfContainers;
        boolean pack = policy.strategy() == ScoringPolicy.Strategy.BINPACK;
        double weighted = policy.gpuWeight() * (pack ? gpuFullness : 1 - gpuFullness)
                + policy.nodeWeight() * (pack ? nodeFullness : 1 - nodeFullness)
                + policy.numaWeight() * alignment;
        int total = policy.gpuWeight() + policy.nodeWeight() + policy.numaWeight();
        return (int) Math.round(MAX_EXTENDER_PRIORITY * weighted / total);
    }

    /** The agent's Fit score (0..100) on kube-scheduler's scale, for nodes answered by a Fit call. */
    static int fromFitScore(int fitScore) {
        return Math.max(0, Math.min(MAX_EXTENDER_PRIORITY, Math.round(fitScore / 10f)));
    }
}
