package io.omai.simulator.cluster;

import io.fabric8.kubernetes.api.model.Pod;
import io.omai.agent.schedapi.v1.GpuState;
import io.omai.agent.schedapi.v1.HcaState;
import io.omai.agent.schedapi.v1.NodeState;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.PriorityQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Places a stream of pods on a {@link SimulatedCluster} as a cluster does: every pod is created pending in the
 * API, kube-scheduler's queue hands them out by priority, then creation order, to one or more scheduling loops
 * ({@link KubeSchedulerDriver}s, each with its own extender instance, concurrently); a bound pod is admitted by
 * its node's kubelet; a failed binding is requeued (up to {@link #MAX_ATTEMPTS}); an unschedulable pod is set
 * aside. Everything judged afterwards is read from the agents (GetNodeState), not from this class's bookkeeping.
 */
public final class PodStreamRun {
    private static final Logger log = LoggerFactory.getLogger(PodStreamRun.class);
    static final int MAX_ATTEMPTS = 8;

    /** What happened to one pod. */
    public record Placement(ClusterPod pod, Optional<String> node, String outcome) {}

    /**
     * The run's figures.
     *
     * @param fillAtFirstNoRoom fraction of the cluster's milli capacity the agents held when the first pod found
     *     no room (no node could hold it even ignoring tenants); empty if none did
     * @param fillAtFirstUnschedulable the same at the first unschedulable pod of any reason (tenants included)
     * @param coLocations every GPU (node/uuid) that the agents report holding two tenants
     * @param overCommits every GPU or HCA whose allocations and reservations exceed its capacity
     */
    public record Result(
            int pods,
            int bound,
            int admitted,
            List<String> admissionFailures,
            int bindRetries,
            int unschedulable,
            OptionalDouble fillAtFirstNoRoom,
            OptionalDouble fillAtFirstUnschedulable,
            double finalFill,
            List<String> coLocations,
            List<String> overCommits,
            List<Placement> placements) {

        /** One {@code event=cluster_result} log line. */
        public String summary() {
            return String.format(
                    Locale.ROOT,
                    "event=cluster_result pods=%d bound=%d admitted=%d admission_failures=%d bind_retries=%d "
                            + "unschedulable=%d fill_at_first_no_room=%s fill_at_first_unschedulable=%s "
                            + "final_fill=%.3f co_locations=%d over_commits=%d",
                    pods,
                    bound,
                    admitted,
                    admissionFailures.size(),
                    bindRetries,
                    unschedulable,
                    format(fillAtFirstNoRoom),
                    format(fillAtFirstUnschedulable),
                    finalFill,
                    coLocations.size(),
                    overCommits.size());
        }

        private static String format(OptionalDouble fill) {
            return fill.isPresent() ? String.format(Locale.ROOT, "%.3f", fill.getAsDouble()) : "none";
        }
    }

    private record Queued(ClusterPod pod, long order, int attempts) {}

    private final SimulatedCluster cluster;
    private final List<KubeSchedulerDriver> schedulers;
    private final Consumer<Placement> listener;
    private java.util.Set<String> measured = java.util.Set.of();
    private boolean deferAdmission;
    /** Pods bound but not yet admitted (with {@link #deferringAdmission}), and their nodes. */
    private final List<Map.Entry<ClusterPod, String>> deferred = Collections.synchronizedList(new ArrayList<>());

    private final PriorityQueue<Queued> queue = new PriorityQueue<>(
            Comparator.comparingInt((Queued q) -> -q.pod().priority()).thenComparingLong(Queued::order));
    private final List<Placement> placements = Collections.synchronizedList(new ArrayList<>());
    private final List<String> admissionFailures = Collections.synchronizedList(new ArrayList<>());
    private int bound;
    private int admitted;
    private int bindRetries;
    private int unschedulable;
    private OptionalDouble fillAtFirstNoRoom = OptionalDouble.empty();
    private OptionalDouble fillAtFirstUnschedulable = OptionalDouble.empty();

    public PodStreamRun(SimulatedCluster cluster, List<KubeSchedulerDriver> schedulers, Consumer<Placement> listener) {
        if (schedulers.isEmpty()) {
            throw new IllegalArgumentException("a pod stream needs at least one scheduler");
        }
        this.cluster = cluster;
        this.schedulers = List.copyOf(schedulers);
        this.listener = listener;
    }

    /**
     * Measures fill over these nodes only (default: all), e.g. to leave out a node an earlier case filled.
     */
    public PodStreamRun measuring(java.util.Set<String> nodes) {
        this.measured = java.util.Set.copyOf(nodes);
        return this;
    }

    /**
     * kubelet admits only once scheduling is done, each node's bound pods in kubelet's order (creation time; ties
     * by namespace/name, one order kubelet's unstable sort may take), and they start running after the last
     * admission: as when pods are bound faster than a node's kubelet admits them. Several scheduling loops then
     * contend for capacity through the extender alone.
     */
    public PodStreamRun deferringAdmission() {
        this.deferAdmission = true;
        return this;
    }

    /** Creates every pod pending, schedules and admits them all; returns the figures. */
    public Result run(List<ClusterPod> pods) throws Exception {
        long order = 0;
        for (ClusterPod pod : pods) {
            cluster.client()
                    .pods()
                    .inNamespace(pod.tenant())
                    .resource(pod.toPod())
                    .create();
            synchronized (queue) {
                queue.add(new Queued(pod, order++, 0));
            }
        }
        ExecutorService loops = Executors.newFixedThreadPool(schedulers.size());
        try {
            List<Future<?>> running = new ArrayList<>();
            for (KubeSchedulerDriver scheduler : schedulers) {
                running.add(loops.submit(() -> {
                    loop(scheduler);
                    return null;
                }));
            }
            for (Future<?> loop : running) {
                loop.get();
            }
        } finally {
            loops.shutdownNow();
        }
        admitDeferred();
        List<NodeState> states = states();
        synchronized (this) {
            return new Result(
                    pods.size(),
                    bound,
                    admitted,
                    List.copyOf(admissionFailures),
                    bindRetries,
                    unschedulable,
                    fillAtFirstNoRoom,
                    fillAtFirstUnschedulable,
                    fill(states),
                    coLocations(states),
                    overCommits(states),
                    List.copyOf(placements));
        }
    }

    private void loop(KubeSchedulerDriver scheduler) throws InterruptedException {
        while (true) {
            Queued next;
            synchronized (queue) {
                next = queue.poll();
            }
            if (next == null) {
                return;
            }
            ClusterPod spec = next.pod();
            Pod pod = cluster.client()
                    .pods()
                    .inNamespace(spec.tenant())
                    .withName(spec.name())
                    .get();
            KubeSchedulerDriver.Outcome outcome = scheduler.schedule(pod);
            switch (outcome) {
                case KubeSchedulerDriver.Outcome.Bound b -> {
                    synchronized (this) {
                        bound++;
                    }
                    if (deferAdmission) {
                        deferred.add(Map.entry(spec, b.node()));
                    } else {
                        admit(spec, b.node(), true);
                    }
                }
                case KubeSchedulerDriver.Outcome.Failed f -> {
                    synchronized (this) {
                        bindRetries++;
                    }
                    log.info(
                            "event=scheduling_retry pod={}/{} phase={} attempt={} error={}",
                            spec.tenant(),
                            spec.name(),
                            f.phase(),
                            next.attempts() + 1,
                            f.error());
                    if (next.attempts() + 1 >= MAX_ATTEMPTS) {
                        record(new Placement(spec, Optional.empty(), "gave up: " + f.phase() + ": " + f.error()));
                    } else {
                        Thread.sleep(50L * (next.attempts() + 1)); // kube-scheduler's backoff, shortened
                        synchronized (queue) {
                            queue.add(new Queued(spec, next.order(), next.attempts() + 1));
                        }
                    }
                }
                case KubeSchedulerDriver.Outcome.Unschedulable u -> {
                    List<NodeState> states = states();
                    double fill = fill(states);
                    boolean room = fitsIgnoringTenants(spec, states, this::freeVfs);
                    synchronized (this) {
                        unschedulable++;
                        if (fillAtFirstUnschedulable.isEmpty()) {
                            fillAtFirstUnschedulable = OptionalDouble.of(fill);
                        }
                        if (!room && fillAtFirstNoRoom.isEmpty()) {
                            fillAtFirstNoRoom = OptionalDouble.of(fill);
                        }
                    }
                    record(new Placement(
                            spec,
                            Optional.empty(),
                            (room ? "unschedulable (room held by other tenants): " : "unschedulable (no room): ")
                                    + u.reason() + " " + u.failedNodes()));
                }
            }
        }
    }

    private void admit(ClusterPod spec, String node, boolean thenRun) {
        ClusterNode.Admission admission =
                cluster.node(node).admit(cluster.client(), spec.tenant(), spec.name(), Duration.ofSeconds(30), thenRun);
        synchronized (this) {
            if (admission.admitted()) {
                admitted++;
            } else {
                admissionFailures.add(spec.tenant() + "/" + spec.name() + " on " + node + ": "
                        + admission.failure().orElseThrow());
            }
        }
        record(new Placement(
                spec,
                Optional.of(node),
                admission.admitted() ? "admitted" : admission.failure().orElseThrow()));
    }

    private void admitDeferred() {
        Map<String, List<ClusterPod>> byNode = new java.util.TreeMap<>();
        synchronized (deferred) {
            for (Map.Entry<ClusterPod, String> bound : deferred) {
                byNode.computeIfAbsent(bound.getValue(), n -> new ArrayList<>()).add(bound.getKey());
            }
        }
        byNode.forEach((node, pods) -> {
            List<ClusterPod> ordered = pods.stream()
                    .sorted(Comparator.comparing((ClusterPod p) -> cluster.client()
                                    .pods()
                                    .inNamespace(p.tenant())
                                    .withName(p.name())
                                    .get()
                                    .getMetadata()
                                    .getCreationTimestamp())
                            .thenComparing(ClusterPod::tenant)
                            .thenComparing(ClusterPod::name))
                    .toList();
            ordered.forEach(pod -> admit(pod, node, false));
            ordered.forEach(pod -> ClusterNode.markRunning(cluster.client(), pod.tenant(), pod.name()));
        });
    }

    private void record(Placement placement) {
        placements.add(placement);
        log.info(
                "event=pod_placed pod={}/{} milli={} vfs={} node={} outcome={}",
                placement.pod().tenant(),
                placement.pod().name(),
                placement.pod().milli(),
                placement.pod().vfs(),
                placement.node().orElse("-"),
                placement.outcome());
        listener.accept(placement);
    }

    /** VFs of the node no container holds, as kubelet's PodResources says. */
    private int freeVfs(String node) {
        ClusterNode clusterNode = cluster.node(node);
        return clusterNode.vfs()
                - clusterNode
                        .kubelet()
                        .podResources()
                        .held(SimulatedCluster.IB_VF)
                        .size();
    }

    private List<NodeState> states() {
        return cluster.nodes().stream().map(ClusterNode::state).toList();
    }

    /** Milli held by running containers over the capacity of the measured nodes. */
    private double fill(List<NodeState> states) {
        return fillOf(states.stream()
                .filter(s -> measured.isEmpty() || measured.contains(s.getNodeName()))
                .toList());
    }

    /** Milli held by running containers over the capacity of {@code states}' nodes. */
    public static double fillOf(List<NodeState> states) {
        long held = 0;
        long capacity = 0;
        for (NodeState state : states) {
            for (GpuState gpu : state.getGpusList()) {
                held += gpu.getMilliAllocated();
                capacity += gpu.getMilliCapacity();
            }
        }
        return capacity == 0 ? 0 : (double) held / capacity;
    }

    /**
     * Whether some node could hold the pod if tenants did not matter: GPUs with room (shares: one GPU with enough
     * free milli; whole GPUs: that many untouched GPUs on one node), of the selector's class, and free VFs.
     */
    static boolean fitsIgnoringTenants(
            ClusterPod pod, List<NodeState> states, java.util.function.ToIntFunction<String> freeVfs) {
        for (NodeState state : states) {
            if (freeVfs.applyAsInt(state.getNodeName()) < pod.vfs()) {
                continue;
            }
            long usable = state.getGpusList().stream()
                    .filter(gpu -> gpu.getHealth() == io.omai.agent.schedapi.v1.Health.HEALTH_HEALTHY)
                    .filter(gpu -> pod.gpuClass()
                            .map(c -> c.equals(gpu.getAttributesMap().get("class")))
                            .orElse(true))
                    .filter(gpu -> {
                        int used = gpu.getMilliAllocated() + gpu.getMilliReserved();
                        return pod.milli() < 1000 ? gpu.getMilliCapacity() - used >= pod.milli() : used == 0;
                    })
                    .count();
            if (usable >= (pod.milli() < 1000 ? 1 : pod.gpus())) {
                return true;
            }
        }
        return false;
    }

    /**
     * GPUs the agents report with more than one tenant: in a GPU's tenants, or among the allocations (one entry
     * per container per GPU) that name it.
     */
    static List<String> coLocations(List<NodeState> states) {
        List<String> found = new ArrayList<>();
        for (NodeState state : states) {
            for (GpuState gpu : state.getGpusList()) {
                if (gpu.getTenantsCount() > 1) {
                    found.add(state.getNodeName() + "/" + gpu.getUuid() + " " + gpu.getTenantsList());
                }
            }
            Map<String, java.util.Set<String>> tenantsByGpu = new java.util.TreeMap<>();
            for (io.omai.agent.schedapi.v1.Allocation allocation : state.getAllocationsList()) {
                if (!allocation.getGpuUuid().isEmpty()) {
                    tenantsByGpu
                            .computeIfAbsent(allocation.getGpuUuid(), g -> new java.util.TreeSet<>())
                            .add(allocation.getTenant());
                }
            }
            tenantsByGpu.forEach((gpu, tenants) -> {
                if (tenants.size() > 1) {
                    found.add(state.getNodeName() + "/" + gpu + " allocations of " + tenants);
                }
            });
        }
        return found;
    }

    /** GPUs or HCAs the agents report holding more than their capacity. */
    static List<String> overCommits(List<NodeState> states) {
        List<String> found = new ArrayList<>();
        for (NodeState state : states) {
            for (GpuState gpu : state.getGpusList()) {
                int used = gpu.getMilliAllocated() + gpu.getMilliReserved();
                if (used > gpu.getMilliCapacity()) {
                    found.add(state.getNodeName() + "/" + gpu.getUuid() + " " + used + "/" + gpu.getMilliCapacity());
                }
            }
            for (HcaState hca : state.getHcasList()) {
                if (hca.getVfsFree() < 0 || hca.getVfsFree() > hca.getVfsTotal()) {
                    found.add(state.getNodeName() + "/" + hca.getName() + " vfs_free=" + hca.getVfsFree() + "/"
                            + hca.getVfsTotal());
                }
            }
        }
        return found;
    }

    /** Each GPU's tenants and milli, for the live table: node → lines. */
    static Map<String, List<String>> gpuLines(List<NodeState> states) {
        Map<String, List<String>> lines = new java.util.LinkedHashMap<>();
        for (NodeState state : states) {
            List<String> gpus = new ArrayList<>();
            for (GpuState gpu : state.getGpusList()) {
                gpus.add(String.format(
                        Locale.ROOT,
                        "%-3d %4d/%4d reserved %4d  %s",
                        gpu.getIndex(),
                        gpu.getMilliAllocated(),
                        gpu.getMilliCapacity(),
                        gpu.getMilliReserved(),
                        gpu.getTenantsCount() == 0 ? "-" : String.join(",", gpu.getTenantsList())));
            }
            lines.put(state.getNodeName(), gpus);
        }
        return lines;
    }
}
