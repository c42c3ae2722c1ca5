package io.omai.extender.config;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * How prioritize ranks the nodes a pod fits: each weight multiplies a fraction in 0..1, and the weighted mean is
 * scaled to kube-scheduler's 0..10.
 *
 * @param strategy {@link Strategy#BINPACK} prefers fuller GPUs and nodes (keeps whole GPUs and empty nodes free
 *     for training jobs), {@link Strategy#SPREAD} emptier ones (less contention per GPU)
 * @param gpuWeight weight of how full the GPUs the pod lands on are afterwards
 * @param nodeWeight weight of how full the node's healthy GPUs are afterwards
 * @param numaWeight weight of the fraction of VF-using containers whose VFs sit on their GPUs' NUMA node
 */
public record ScoringPolicy(Strategy strategy, int gpuWeight, int nodeWeight, int numaWeight) {
    public static final ScoringPolicy DEFAULT = new ScoringPolicy(Strategy.BINPACK, 5, 3, 2);

    public ScoringPolicy {
        if (strategy == null) {
            throw new IllegalArgumentException("scoring strategy is missing; expected binpack or spread");
        }
        if (gpuWeight < 0 || nodeWeight < 0 || numaWeight < 0 || gpuWeight + nodeWeight + numaWeight == 0) {
            throw new IllegalArgumentException("scoring weights gpu=" + gpuWeight + " node=" + nodeWeight + " numa="
                    + numaWeight + " must not be negative and must not all be 0");
        }
    }

    /** The two ways to rank nodes that fit. */
    public enum Strategy {
        BINPACK,
        SPREAD;

        /** {@code binpack} or {@code spread}, case-insensitive. */
        public static Strategy parse(String text) {
            for (Strategy strategy : values()) {
                if (text != null && strategy.configName().equals(text.trim().toLowerCase(Locale.ROOT))) {
                    return strategy;
                }
            }
            throw new IllegalArgumentException("scoring strategy '" + text + "' is not one of "
                    + Arrays.stream(values()).map(Strategy::configName).collect(Collectors.joining(", ")));
        }

        public String configName() {
            return name().toLowerCase(Locale.ROOT);
        }
    }
}
