package io.omai.extender.decide;

import com.google.common.util.concurrent.ListenableFuture;
import io.grpc.Status;
import io.omai.agent.schedapi.expr.ExpressionException;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.ContainerRequirement;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.extender.cache.NodeLink;
import io.omai.extender.cache.NodeStateCache;
import io.omai.extender.config.ScoringPolicy;
import io.omai.placement.ContainerDemand;
import io.omai.placement.GpuCondition;
import io.omai.placement.NodeState;
import io.omai.placement.Plan;
import io.omai.placement.Planner;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Filter and prioritize for one pod over many nodes, from the watched cache through the agents' own placement
 * library, so a node's verdict is the verdict its agent's Fit would give. A node whose watch stream is down is
 * asked by a Fit call with a deadline; one without an agent, or whose agent does not answer in time, fails as
 * unresolvable.
 */
public final class Decider implements AutoCloseable {
    /** Below this many nodes the work is not worth splitting across threads. */
    private static final int PARALLEL_THRESHOLD = 256;

    private final NodeStateCache cache;
    private final ScoringPolicy scoring;
    private final Duration fitDeadline;
    private final ForkJoinPool pool;
    // one view per node, rebuilt when a new state arrives; verdicts by pod shape live in it
    private final Map<String, NodeView> views = new ConcurrentHashMap<>();

    public Decider(NodeStateCache cache, ScoringPolicy scoring, Duration fitDeadline, int parallelism) {
        this.cache = cache;
        this.scoring = scoring;
        this.fitDeadline = fitDeadline;
        this.pool = new ForkJoinPool(Math.max(1, parallelism));
    }

    /**
     * A verdict for every node in {@code nodeNames}, in that order. One lookup per node, results by position (no
     * shared map written from the worker threads): for 5 000 nodes the bookkeeping otherwise cost as much as the
     * cached verdicts themselves (JFR, docs/benchmarks.md).
     */
    public Map<String, Verdict> decide(PodDemand pod, List<String> nodeNames) {
        String shape = pod.shape();
        PodPlanning planning = new PodPlanning(pod);
        int count = nodeNames.size();
        Verdict[] verdicts = new Verdict[count];
        io.omai.agent.schedapi.v1.NodeState[] states = new io.omai.agent.schedapi.v1.NodeState[count];
        int[] cached = new int[count];
        int cachedCount = 0;
        Map<String, NodeLink> remote = new LinkedHashMap<>();
        for (int i = 0; i < count; i++) {
            String node = nodeNames.get(i);
            NodeLink link = cache.link(node).orElse(null);
            if (link == null) {
                verdicts[i] = new Verdict.Fails(
                        Reasons.PREFIX + "no OMAI node agent is known on this node (none in the agents' "
                                + "EndpointSlices)",
                        true);
            } else if (!link.live()) {
                remote.put(node, link);
            } else {
                // live() saw a state; it is never taken away again, only replaced
                states[i] = link.latest().orElseThrow().state();
                cached[cachedCount++] = i;
            }
        }
        int local = cachedCount;
        if (local >= PARALLEL_THRESHOLD) {
            try {
                pool.submit(() -> java.util.stream.IntStream.range(0, local)
                                .parallel()
                                .forEach(k -> {
                                    int i = cached[k];
                                    verdicts[i] = decideLocally(pod, shape, states[i], planning);
                                }))
                        .get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while filtering", e);
            } catch (ExecutionException e) {
                throw new IllegalStateException("filtering failed: " + e.getCause(), e.getCause());
            }
        } else {
            for (int k = 0; k < local; k++) {
                int i = cached[k];
                verdicts[i] = decideLocally(pod, shape, states[i], planning);
            }
        }
        Map<String, Verdict> asked = askAgents(pod, remote);
        Map<String, Verdict> ordered = LinkedHashMap.newLinkedHashMap(count);
        for (int i = 0; i < count; i++) {
            String node = nodeNames.get(i);
            Verdict verdict = verdicts[i];
            ordered.put(node, verdict != null ? verdict : asked.get(node));
        }
        return ordered;
    }

    /** Where the pod's containers would go on {@code node} now, its own reservation not counted: for bind. */
    public Verdict place(PodDemand pod, String node) {
        Optional<NodeLink> link = cache.link(node);
        if (link.isEmpty()) {
            return new Verdict.Fails(Reasons.PREFIX + "no OMAI node agent is known on node " + node, true);
        }
        if (link.get().live()) {
            return decideLocally(pod, link.get().latest().orElseThrow().state());
        }
        return askAgents(pod, Map.of(node, link.get())).get(node);
    }

    /** The verdict from a watched state, the placement library deciding as it does in the agent. */
    Verdict decideLocally(PodDemand pod, io.omai.agent.schedapi.v1.NodeState state) {
        return decideLocally(pod, pod.shape(), state, new PodPlanning(pod));
    }

    /**
     * Pods of one shape (tenant, containers, selector: replicas of one job, and prioritize after filter) get the
     * same verdict on the same received state, so it is computed once per state and shape. A pod that holds a
     * reservation on the node is decided afresh (its own reservation is not counted).
     */
    private Verdict decideLocally(
            PodDemand asSent, String sentShape, io.omai.agent.schedapi.v1.NodeState state, PodPlanning planning) {
        // the node's agent names the tenant label it reads; a node configured otherwise sees another tenant
        PodDemand pod = asSent.underTenantLabel(state.getTenantLabel());
        String shape = pod.tenant().equals(asSent.tenant()) ? sentShape : pod.shape();
        for (var reservation : state.getReservationsList()) {
            if (reservation.getPodUid().equals(pod.uid())) {
                return plan(pod, NodeView.of(state, Optional.of(pod.uid())), planning);
            }
        }
        NodeView view = sharedView(state);
        return view.verdictFor(shape, () -> plan(pod, view, planning));
    }

    /**
     * What planning needs from the pod besides the node, built once per pod rather than once per node: the
     * placement demands and the selectors by container (the tenant may differ per node, the containers do not).
     */
    private static final class PodPlanning {
        private final List<ContainerDemand> apps;
        private final List<ContainerDemand> inits;
        private final Map<String, PodDemand.ContainerNeed> selecting = new HashMap<>();

        PodPlanning(PodDemand pod) {
            apps = demands(pod.containers());
            inits = demands(pod.initContainers());
            pod.containers().forEach(c -> remember(c));
            pod.initContainers().forEach(c -> remember(c));
        }

        private void remember(PodDemand.ContainerNeed need) {
            // as before: a later container of the same name decides (init containers after app containers)
            if (need.selector().isPresent()) {
                selecting.put(need.name(), need);
            } else {
                selecting.remove(need.name());
            }
        }

        /** The selectors' condition on {@code view}'s GPUs; none at all when no container has a selector. */
        GpuCondition condition(NodeView view) {
            if (selecting.isEmpty()) {
                return NO_CONDITION;
            }
            return (demand, gpu) -> {
                var need = selecting.get(demand.name());
                if (need == null) {
                    return Optional.empty();
                }
                try {
                    return need.selector().orElseThrow().test(view.device(gpu))
                            ? Optional.empty()
                            : Optional.of("expression is false: "
                                    + need.selector().orElseThrow().text());
                } catch (ExpressionException e) {
                    return Optional.of("expression failed: " + e.getMessage());
                }
            };
        }
    }

    private static final GpuCondition NO_CONDITION = (demand, gpu) -> Optional.empty();

    private Verdict plan(PodDemand pod, NodeView view, PodPlanning planning) {
        var state = view.proto();
        GpuCondition condition = planning.condition(view);
        List<ContainerDemand> apps = planning.apps;
        Plan plan = Planner.plan(view.node(), pod.tenant(), apps, view.policy(), condition);
        List<Plan.Refusal> refusals = plan.refusals();
        for (var init : planning.inits) {
            if (!plan.feasible()) {
                break;
            }
            Plan alone = Planner.plan(view.node(), pod.tenant(), List.of(init), view.policy(), condition);
            if (!alone.feasible()) {
                plan = alone;
                refusals = alone.refusals();
            }
        }
        if (!plan.feasible()) {
            NodeState cleared = view.capacityCleared();
            boolean unresolvable = !Planner.plan(cleared, pod.tenant(), apps, view.policy(), condition)
                            .feasible()
                    || planning.inits.stream()
                            .anyMatch(init -> !Planner.plan(
                                            cleared, pod.tenant(), List.of(init), view.policy(), condition)
                                    .feasible());
            return new Verdict.Fails(Reasons.describe(refusals, pod), unresolvable);
        }
        var assignments = plan.placements().stream()
                .map(p -> ContainerAssignment.newBuilder()
                        .setName(p.container())
                        .addAllGpuUuids(p.gpuUuids())
                        .setMilli(p.milli())
                        .setMemoryBytes(p.memoryBytes())
                        .addAllVfIds(p.vfIds())
                        .build())
                .toList();
        return new Verdict.Fits(Scoring.score(view.node(), plan, scoring), assignments, state.getGeneration());
    }

    /** The view of a received state, built once and shared by every pod decided on it. */
    private NodeView sharedView(io.omai.agent.schedapi.v1.NodeState state) {
        NodeView view = views.get(state.getNodeName());
        if (view == null || !same(view.proto(), state)) {
            view = NodeView.of(state, Optional.empty());
            views.put(state.getNodeName(), view);
        }
        return view;
    }

    /** The very message the stream delivered: a new one, even with equal content, is a new state to decide on. */
    @SuppressWarnings("ReferenceEquality")
    private static boolean same(io.omai.agent.schedapi.v1.NodeState a, io.omai.agent.schedapi.v1.NodeState b) {
        return a == b;
    }

    private static List<ContainerDemand> demands(List<PodDemand.ContainerNeed> needs) {
        return needs.stream()
                .map(n -> new ContainerDemand(n.name(), n.milli(), 0, n.vfs(), n.vfResource()))
                .toList();
    }

    /** Fit calls, all at once, to nodes whose stream is down; each gets the same deadline. */
    private Map<String, Verdict> askAgents(PodDemand pod, Map<String, NodeLink> links) {
        Map<String, Verdict> verdicts = new HashMap<>();
        if (links.isEmpty()) {
            return verdicts;
        }
        FitRequest request = fitRequest(pod);
        Map<String, ListenableFuture<FitResponse>> calls = new LinkedHashMap<>();
        links.forEach((node, link) -> calls.put(
                node,
                link.futures()
                        .withDeadlineAfter(fitDeadline.toMillis(), TimeUnit.MILLISECONDS)
                        .fit(request)));
        long until = System.nanoTime() + fitDeadline.toNanos() + TimeUnit.MILLISECONDS.toNanos(50);
        calls.forEach((node, call) -> {
            try {
                FitResponse answer = call.get(Math.max(0, until - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (answer.getFeasible()) {
                    verdicts.put(
                            node,
                            new Verdict.Fits(
                                    Scoring.fromFitScore(answer.getScore()),
                                    // Reserve holds the app containers (docs/scheduler-api.md, Reserve)
                                    answer.getAssignmentsList().stream()
                                            .filter(a -> pod.containers().stream()
                                                    .anyMatch(c -> c.name().equals(a.getName())))
                                            .toList(),
                                    answer.getGeneration()));
                } else {
                    var refusals = answer.getReasonsList().stream()
                            .map(r -> new Plan.Refusal(r.getContainer(), r.getGpuUuid(), r.getMessage()))
                            .toList();
                    verdicts.put(
                            node, new Verdict.Fails(Reasons.describe(refusals, pod), Reasons.unresolvable(refusals)));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                verdicts.put(node, unreachable(links.get(node), "interrupted"));
            } catch (ExecutionException e) {
                verdicts.put(
                        node,
                        unreachable(
                                links.get(node),
                                Status.fromThrowable(e.getCause()).toString()));
            } catch (TimeoutException e) {
                call.cancel(true);
                verdicts.put(
                        node, unreachable(links.get(node), "no Fit answer within " + fitDeadline.toMillis() + " ms"));
            }
        });
        return verdicts;
    }

    private static Verdict unreachable(NodeLink link, String fitFailure) {
        return new Verdict.Fails(
                Reasons.PREFIX + "node agent unreachable (watch: " + link.lastFailure() + "; Fit: " + fitFailure + ")",
                true);
    }

    static FitRequest fitRequest(PodDemand pod) {
        var request = FitRequest.newBuilder().setTenant(pod.tenant());
        if (!pod.uid().isEmpty()) {
            request.setPodUid(pod.uid());
        }
        for (var need : pod.containers()) {
            request.addContainers(requirement(need, false));
        }
        for (var need : pod.initContainers()) {
            request.addContainers(requirement(need, true));
        }
        return request.build();
    }

    private static ContainerRequirement requirement(PodDemand.ContainerNeed need, boolean init) {
        return ContainerRequirement.newBuilder()
                .setName(need.name())
                .setMilli(need.milli())
                .setVfs(need.vfs())
                .setVfResource(need.vfResource())
                .setExpression(need.expression())
                .setInit(init)
                .build();
    }

    @Override
    public void close() {
        pool.shutdownNow();
    }
}
