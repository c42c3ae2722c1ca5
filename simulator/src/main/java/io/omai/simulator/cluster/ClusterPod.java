package io.omai.simulator.cluster;

import io.fabric8.kubernetes.api.model.ContainerBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

/**
 * A pod of the simulated cluster's stream: its tenant (its namespace), one container asking for {@code milli}
 * {@code omai.io/milli-gpu} (a share below 1000, or k·1000 whole GPUs) and {@code vfs} {@code omai.io/ib-vf},
 * optionally an {@code omai.io/gpu-selector} CEL expression, and a priority (kube-scheduler's queue takes higher
 * priorities first).
 *
 * @param gpuClass when present, the selector restricts the pod to GPUs labelled with this class
 * @param selector the {@code omai.io/gpu-selector} annotation, if any
 */
public record ClusterPod(
        String tenant,
        String name,
        int milli,
        int vfs,
        Optional<String> gpuClass,
        Optional<String> selector,
        int priority) {
    public static final String SELECTOR_ANNOTATION = "omai.io/gpu-selector";
    public static final List<String> TENANTS = List.of("team-a", "team-b", "team-c");

    public ClusterPod {
        if (!(milli > 0 && milli < 1000) && (milli <= 0 || milli % 1000 != 0)) {
            throw new IllegalArgumentException(
                    "pod " + name + ": " + milli + " milli is neither a share below 1000 nor whole GPUs");
        }
    }

    /** How many GPUs the pod's container holds. */
    public int gpus() {
        return milli < 1000 ? 1 : milli / 1000;
    }

    /** The pod as a user creates it: pending, not bound, its resources as limits. */
    public Pod toPod() {
        Map<String, String> annotations = new LinkedHashMap<>();
        selector.ifPresent(s -> annotations.put(SELECTOR_ANNOTATION, s));
        Map<String, Quantity> limits = new LinkedHashMap<>();
        limits.put(SimulatedCluster.MILLI_GPU, new Quantity(Integer.toString(milli)));
        if (vfs > 0) {
            limits.put(SimulatedCluster.IB_VF, new Quantity(Integer.toString(vfs)));
        }
        return new PodBuilder()
                .withNewMetadata()
                .withNamespace(tenant)
                .withName(name)
                .withAnnotations(annotations)
                .endMetadata()
                .withNewSpec()
                .withSchedulerName("default-scheduler")
                .withPriority(priority)
                .addToContainers(new ContainerBuilder()
                        .withName("main")
                        .withImage("omai-workload")
                        .withNewResources()
                        .withLimits(limits)
                        .endResources()
                        .build())
                .endSpec()
                .withNewStatus()
                .withPhase("Pending")
                .endStatus()
                .build();
    }

    /**
     * A seeded stream of {@code count} pods of the three tenants: 250 (half), 500 (3 in 10) and 1000 (3 in 20) milli
     * and 2-GPU whole pods (1 in 20), a fifth of them with a VF, a sixth with a selector (half of those restricted to {@code class: train}
     * GPUs). Bigger pods get higher priorities (a queue that places large jobs first), so kube-scheduler's queue
     * hands them out first within each wave.
     */
    public static List<ClusterPod> stream(long seed, int count) {
        Random random = new Random(seed);
        List<ClusterPod> pods = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String tenant = TENANTS.get(random.nextInt(TENANTS.size()));
            int pick = random.nextInt(20);
            int milli = pick < 1 ? 2000 : pick < 4 ? 1000 : pick < 10 ? 500 : 250;
            int vfs = random.nextInt(5) == 0 ? 1 : 0;
            Optional<String> gpuClass = Optional.empty();
            Optional<String> selector = Optional.empty();
            int kind = random.nextInt(12);
            if (kind == 0) {
                gpuClass = Optional.of("train");
                selector = Optional.of("device.class == \"train\"");
            } else if (kind == 1) {
                selector = Optional.of("device.memory >= quantity(\"40Gi\") && \"simulated\" in device.tags");
            }
            pods.add(new ClusterPod(
                    tenant,
                    String.format(java.util.Locale.ROOT, "p%03d-%d", i, milli),
                    milli,
                    vfs,
                    gpuClass,
                    selector,
                    milli));
        }
        return pods;
    }
}
