package io.omai.extender.decide;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.omai.agent.schedapi.ClientPolicy;
import io.omai.agent.schedapi.DeviceHealth;
import io.omai.agent.schedapi.GpuSnapshot;
import io.omai.agent.schedapi.HcaSnapshot;
import io.omai.agent.schedapi.NodeSnapshot;
import io.omai.agent.schedapi.SchedulerApiServer;
import io.omai.agent.schedapi.StaticNodeInventory;
import io.omai.agent.schedapi.expr.DeviceExpressions;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.extender.cache.NodeStateCache;
import io.omai.extender.config.ScoringPolicy;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.Plan;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import net.jqwik.api.statistics.Statistics;

/**
 * The extender's filter verdict equals the agent's Fit for random node states (allocations, reservations, health,
 * tenants, NUMA, VFs, anti-affinity policy) and random pods (shares, whole GPUs, VFs, selectors, a reservation of
 * its own): same feasibility, same assignments, same reasons. The agent side is the agent's own gRPC server.
 */
class VerdictEqualityTest {
    private static final long GIB = 1L << 30;
    private static final String[] TENANTS = {"team-a", "team-b", "team-c"};
    private static final String[] SELECTORS = {
        "", "device.class == 'train'", "device.memory_free >= quantity('30Gi')", "device.numa == 1 || device.index == 0"
    };
    private static final List<AntiAffinityPolicy> POLICIES =
            List.of(AntiAffinityPolicy.GPU, AntiAffinityPolicy.NODE, AntiAffinityPolicy.NONE);
    private static final int[] MILLI = {100, 250, 500, 700, 1000, 2000, 3000};

    private static NodeStateCache cache;
    private static Decider decider;
    private static DeviceExpressions expressions;

    @BeforeContainer
    static void decider() {
        cache = new NodeStateCache(
                endpoint -> {
                    throw new AssertionError("no links in this test");
                },
                Duration.ofSeconds(1));
        decider = new Decider(cache, ScoringPolicy.DEFAULT, Duration.ofMillis(100), 1);
        expressions = new DeviceExpressions(16);
    }

    @AfterContainer
    static void close() {
        decider.close();
        cache.close();
    }

    @Property(tries = 150)
    void filterEqualsTheAgentsFit(@ForAll long seed) throws Exception {
        // both outcomes must really be compared, not one of them only
        Statistics.label("feasible").coverage(c -> {
            c.check(true).percentage(p -> p >= 15);
            c.check(false).percentage(p -> p >= 15);
        });
        var random = new Random(seed);
        var policy = POLICIES.get(random.nextInt(POLICIES.size()));
        var inventory = new StaticNodeInventory(randomNode(random));
        var book = new ReservationBook(inventory::snapshot, policy, Clock.systemUTC());
        String name = "agent-" + seed;
        try (var _ = new SchedulerApiServer(
                        InProcessServerBuilder.forName(name).directExecutor(),
                        inventory,
                        book,
                        new ClientPolicy.AnyClient())
                .start()) {
            ManagedChannel channel =
                    InProcessChannelBuilder.forName(name).directExecutor().build();
            try {
                var agent = NodeAgentGrpc.newBlockingStub(channel);
                var pod = randomPod(random);
                // other schedulers' reservations, and sometimes one of the pod's own
                for (int i = 0; i < random.nextInt(3); i++) {
                    reserveSomething(agent, randomPod(random), "other-" + i);
                }
                if (random.nextInt(3) == 0) {
                    reserveSomething(agent, pod, pod.uid());
                }
                FitResponse fit = agent.fit(Decider.fitRequest(pod));
                Verdict verdict =
                        decider.decideLocally(pod, agent.getNodeState(GetNodeStateRequest.getDefaultInstance()));

                Statistics.label("feasible").collect(fit.getFeasible());
                Statistics.label("pod holds a reservation")
                        .collect(
                                agent
                                        .getNodeState(GetNodeStateRequest.getDefaultInstance())
                                        .getReservationsList()
                                        .stream()
                                        .anyMatch(r -> r.getPodUid().equals(pod.uid())));
                assertThat(verdict instanceof Verdict.Fits)
                        .as("feasible, seed %d: agent %s, extender %s", seed, fit, verdict)
                        .isEqualTo(fit.getFeasible());
                if (verdict instanceof Verdict.Fits fits) {
                    // the extender proposes what Reserve holds: the app containers (Fit lists init ones too)
                    assertThat(fits.assignments())
                            .isEqualTo(fit.getAssignmentsList().stream()
                                    .filter(a -> pod.containers().stream()
                                            .anyMatch(c -> c.name().equals(a.getName())))
                                    .toList());
                } else {
                    var refusals = fit.getReasonsList().stream()
                            .map(r -> new Plan.Refusal(r.getContainer(), r.getGpuUuid(), r.getMessage()))
                            .toList();
                    assertThat(((Verdict.Fails) verdict).reason()).isEqualTo(Reasons.describe(refusals, pod));
                }
            } finally {
                channel.shutdownNow();
            }
        }
    }

    /** Reserves what Fit proposes for {@code pod} under {@code uid}, when it fits. */
    private static void reserveSomething(NodeAgentGrpc.NodeAgentBlockingStub agent, PodDemand pod, String uid) {
        FitResponse fit =
                agent.fit(Decider.fitRequest(pod).toBuilder().clearPodUid().build());
        if (!fit.getFeasible()) {
            return;
        }
        try {
            agent.reserve(ReserveRequest.newBuilder()
                    .setIdempotencyKey(uid)
                    .setPodUid(uid)
                    .setTenant(pod.tenant())
                    .addAllContainers(fit.getAssignmentsList())
                    .build());
        } catch (StatusRuntimeException e) {
            // a refused reservation is a state like any other
        }
    }

    private static NodeSnapshot randomNode(Random random) {
        int count = 1 + random.nextInt(8);
        var gpus = new ArrayList<GpuSnapshot>();
        for (int i = 0; i < count; i++) {
            int milli = switch (random.nextInt(4)) {
                case 0 -> 0;
                case 1 -> 1000;
                default -> 100 * random.nextInt(10);
            };
            long memory = 80 * GIB;
            Set<String> tenants = milli == 0 ? Set.of() : Set.of(TENANTS[random.nextInt(TENANTS.length)]);
            gpus.add(new GpuSnapshot(
                    "GPU-" + i,
                    i,
                    "NVIDIA H100 80GB HBM3",
                    memory,
                    1000,
                    milli,
                    memory / 1000 * milli,
                    random.nextInt(10) == 0 ? DeviceHealth.unhealthy("XID 79") : DeviceHealth.HEALTHY,
                    random.nextInt(5) == 0 ? -1 : i % 2,
                    Map.of("class", i % 2 == 0 ? "train" : "infer"),
                    Set.of(),
                    tenants));
        }
        var hcas = new ArrayList<HcaSnapshot>();
        for (int h = 0; h < random.nextInt(3); h++) {
            var vfs = new ArrayList<String>();
            for (int v = 0; v < 4; v++) {
                vfs.add("0000:" + (h == 0 ? "3b" : "d8") + ":00." + (v + 2));
            }
            var free = vfs.stream().filter(vf -> random.nextInt(3) != 0).toList();
            hcas.add(new HcaSnapshot(
                    "mlx5_" + h,
                    "0000:" + (h == 0 ? "3b" : "d8") + ":00.0",
                    h,
                    "InfiniBand",
                    vfs,
                    Set.copyOf(free),
                    List.of()));
        }
        return new NodeSnapshot("node-x", 1, gpus, hcas);
    }

    private static PodDemand randomPod(Random random) throws Exception {
        String selector = SELECTORS[random.nextInt(SELECTORS.length)];
        var containers = new ArrayList<PodDemand.ContainerNeed>();
        for (int i = 0; i < 1 + random.nextInt(3); i++) {
            int milli = MILLI[random.nextInt(MILLI.length)];
            containers.add(new PodDemand.ContainerNeed(
                    "c" + i,
                    milli,
                    random.nextInt(4) == 0 ? 1 + random.nextInt(2) : 0,
                    selector,
                    selector.isEmpty() ? Optional.empty() : Optional.of(expressions.compile(selector))));
        }
        var inits = new ArrayList<PodDemand.ContainerNeed>();
        if (random.nextInt(4) == 0) {
            inits.add(
                    new PodDemand.ContainerNeed("init0", MILLI[random.nextInt(MILLI.length)], 0, "", Optional.empty()));
        }
        return new PodDemand(
                "uid-" + random.nextInt(1000), "ns", "pod", TENANTS[random.nextInt(TENANTS.length)], containers, inits);
    }
}
