package io.omai.extender;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import io.omai.agent.schedapi.v1.AntiAffinity;
import io.omai.agent.schedapi.v1.GpuState;
import io.omai.agent.schedapi.v1.HcaState;
import io.omai.agent.schedapi.v1.Health;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.schedapi.v1.WatchNodeStateRequest;
import io.omai.extender.cache.AgentEndpoint;
import io.omai.extender.cache.NodeStateCache;
import io.omai.extender.config.AgentConnection;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.junit.jupiter.api.Test;

/**
 * The extender's figures for docs/benchmarks.md, printed as p50/p99/max. Not a unit test (the name keeps it out of
 * the default run, and it asserts no timing); run it on purpose:
 *
 * <pre>
 * ./mvnw -B -o -pl scheduler-extender -am verify -Dspotless.check.skip=true \
 *     -Dtest=ExtenderBenchmark -Dsurefire.failIfNoSpecifiedTests=false
 * </pre>
 *
 * <ol>
 *   <li>filter + prioritize over HTTP for 5 000 nodes answered from the cache (8 GPUs and 2 HCAs each, random
 *       load and tenants; the states come through real WatchNodeState streams from an in-process agent stand-in
 *       that serves each node's state);</li>
 *   <li>bind against a real agent's scheduler API over TCP and fabric8's mock API server (pod GET + Binding);</li>
 *   <li>watch lag: from an allocation in a real agent to the extender's cache, over TCP.</li>
 * </ol>
 */
@EnableKubernetesMockClient(crud = true)
class ExtenderBenchmark {
    static KubernetesClient client;
    static KubernetesMockServer server;

    private static final int NODES = 5_000;
    private static final Metadata.Key<String> NODE = Metadata.Key.of("x-bench-node", Metadata.ASCII_STRING_MARSHALLER);
    private static final Context.Key<String> NODE_IN_CONTEXT = Context.key("node");

    @Test
    void filterAndPrioritizeFor5000NodesFromTheCache() throws Exception {
        Map<String, NodeState> states = new HashMap<>();
        var random = new Random(42);
        for (int n = 0; n < NODES; n++) {
            states.put(node(n), randomState(node(n), random));
        }
        Server agents = InProcessServerBuilder.forName("bench-agents")
                .addService(ServerInterceptors.intercept(new StateServer(states), new NodeFromHeader()))
                .build()
                .start();
        var cache = new NodeStateCache(
                endpoint -> {
                    var headers = new Metadata();
                    headers.put(NODE, endpoint.nodeName());
                    return InProcessChannelBuilder.forName("bench-agents")
                            .intercept(MetadataUtils.newAttachHeadersInterceptor(headers))
                            .build();
                },
                Duration.ofSeconds(1));
        Map<String, AgentEndpoint> endpoints = new HashMap<>();
        states.keySet().forEach(n -> endpoints.put(n, new AgentEndpoint(n, "in-process", 1)));
        cache.reconcile(endpoints);
        long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
        while (cache.nodeNames().stream()
                .anyMatch(n -> !cache.link(n).orElseThrow().live())) {
            assertThat(System.nanoTime()).as("all 5000 nodes live in 2 min").isLessThan(deadline);
            Thread.sleep(100);
        }
        var decider = new io.omai.extender.decide.Decider(
                cache,
                io.omai.extender.config.ScoringPolicy.DEFAULT,
                Duration.ofMillis(300),
                Runtime.getRuntime().availableProcessors());
        var expressions = new io.omai.agent.schedapi.expr.DeviceExpressions(16);
        io.omai.extender.bind.Binder.PodReader reader =
                pod -> io.omai.extender.decide.PodDemand.of(pod, "omai.io/tenant", expressions);
        var routes = new io.omai.extender.http.ExtenderRoutes(decider, null, reader);
        var http = new io.omai.extender.http.ExtenderHttpServer(
                        new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0),
                        routes,
                        () -> true)
                .start();
        List<String> names = states.keySet().stream().sorted().toList();
        try {
            List<Long> samples = new ArrayList<>();
            int passedLast = 0;
            for (int i = 0; i < 400; i++) {
                Pod pod = Cluster.pod("team-" + (i % 3), "p" + i, Map.of(), i % 4 == 0 ? 1000 : 300 + 100 * (i % 5));
                String body = Cluster.args(pod, names);
                long start = System.nanoTime();
                var filtered = Cluster.postJson(http.port(), "filter", body);
                var passed = new ArrayList<String>();
                filtered.get("NodeNames").forEach(n -> passed.add(n.asText()));
                Cluster.postJson(http.port(), "prioritize", Cluster.args(pod, passed));
                long took = System.nanoTime() - start;
                if (i >= 100) {
                    samples.add(took);
                }
                passedLast = passed.size();
            }
            assertThat(passedLast).isPositive();
            report("filter+prioritize, 5000 nodes, HTTP+JSON (last pod fit " + passedLast + " nodes)", samples);
            List<Long> decideOnly = new ArrayList<>();
            for (int i = 0; i < 300; i++) {
                var pod = io.omai.extender.decide.PodDemand.of(
                        Cluster.pod("team-" + (i % 3), "d" + i, Map.of(), 500), "omai.io/tenant", expressions);
                long start = System.nanoTime();
                decider.decide(pod, names);
                long took = System.nanoTime() - start;
                if (i >= 50) {
                    decideOnly.add(took);
                }
            }
            report("filter alone (decide), 5000 nodes, no HTTP, repeated shapes", decideOnly);
            List<Long> cold = new ArrayList<>();
            List<Long> coldCpu = new ArrayList<>();
            var os = (com.sun.management.OperatingSystemMXBean)
                    java.lang.management.ManagementFactory.getOperatingSystemMXBean();
            for (int i = 0; i < 120; i++) {
                // a tenant never seen before: nothing decided on any node can be reused
                var pod = io.omai.extender.decide.PodDemand.of(
                        Cluster.pod("cold-" + i, "c" + i, Map.of(), 500), "omai.io/tenant", expressions);
                long cpuBefore = os.getProcessCpuTime();
                long start = System.nanoTime();
                decider.decide(pod, names);
                long took = System.nanoTime() - start;
                if (i >= 20) {
                    cold.add(took);
                    coldCpu.add(os.getProcessCpuTime() - cpuBefore);
                }
            }
            report("filter alone (decide), 5000 nodes, every pod a new shape", cold);
            report("  the same, process CPU time per call (both cores together)", coldCpu);
        } finally {
            http.close();
            decider.close();
            cache.close();
            agents.shutdownNow();
        }
    }

    @Test
    void bindAgainstARealAgentAndWatchLag() throws Exception {
        try (var agent = TestAgent.start("node-a", 8, AntiAffinityPolicy.GPU)) {
            Cluster.publish(client, agent);
            var agents = AgentConnection.of(Cluster.NAMESPACE, Cluster.SERVICE, 9401);
            try (var extender = SchedulerExtender.start(ExtenderSettings.of(0, client, agents))) {
                while (!extender.cache().link("node-a").map(l -> l.live()).orElse(false)) {
                    Thread.sleep(20);
                }
                server.expect()
                        .post()
                        .withPath("/api/v1/namespaces/team-a/pods/p0/binding")
                        .andReturn(201, "{}")
                        .always();
                List<Long> binds = new ArrayList<>();
                for (int i = 0; i < 600; i++) {
                    // the same pod name, a fresh UID each time: one Binding path, a new reservation each time
                    Pod pod = Cluster.pod("team-a", "p0", Map.of(), 100);
                    pod.getMetadata().setUid("uid-bench-" + i);
                    client.pods().inNamespace("team-a").resource(pod).createOr(r -> r.update());
                    String uid = client.pods()
                            .inNamespace("team-a")
                            .withName("p0")
                            .get()
                            .getMetadata()
                            .getUid();
                    String body = Cluster.JSON.writeValueAsString(
                            Map.of("PodName", "p0", "PodNamespace", "team-a", "PodUID", uid, "Node", "node-a"));
                    long start = System.nanoTime();
                    var result = Cluster.postJson(extender.port(), "bind", body);
                    long took = System.nanoTime() - start;
                    assertThat(result.get("Error").asText()).isEmpty();
                    agent.book().releaseByPod(uid);
                    if (i >= 100) {
                        binds.add(took);
                    }
                }
                report("bind (pod GET + Reserve over TCP + Binding POST), mock API", binds);

                // (arrival time, milli on GPU 7) of every state the cache receives
                var arrivals = new ConcurrentLinkedQueue<long[]>();
                extender.cache()
                        .onState((node, state) -> arrivals.add(new long[] {
                            System.nanoTime(),
                            state.getGpusList().stream()
                                    .filter(g -> g.getIndex() == 7)
                                    .findFirst()
                                    .orElseThrow()
                                    .getMilliAllocated()
                        }));
                var lags = new ArrayList<Long>();
                for (int i = 0; i < 300; i++) {
                    long expected = i % 2 == 0 ? 100 : 0;
                    arrivals.clear();
                    long start = System.nanoTime();
                    if (expected == 100) {
                        agent.inventory().allocate(TestAgent.uuid("node-a", 7), "team-a", 100, 1 << 20);
                    } else {
                        agent.inventory().freeAll(TestAgent.uuid("node-a", 7));
                    }
                    long at = -1;
                    while (at < 0) {
                        at = arrivals.stream()
                                .filter(a -> a[1] == expected)
                                .mapToLong(a -> a[0])
                                .findFirst()
                                .orElse(-1);
                        Thread.onSpinWait();
                    }
                    if (i >= 50) {
                        lags.add(at - start);
                    }
                    Thread.sleep(2);
                }
                report("watch lag: allocation in the agent -> extender cache, TCP", lags);
            }
        }
    }

    private static void report(String what, List<Long> nanos) {
        long[] sorted = nanos.stream().mapToLong(Long::longValue).sorted().toArray();
        System.out.printf(
                Locale.ROOT,
                "BENCH %-70s n=%d p50=%.2f ms p99=%.2f ms max=%.2f ms (cpus=%d, load average %.1f)%n",
                what,
                sorted.length,
                sorted[sorted.length / 2] / 1e6,
                sorted[(int) Math.ceil(sorted.length * 0.99) - 1] / 1e6,
                Arrays.stream(sorted).max().orElse(0) / 1e6,
                Runtime.getRuntime().availableProcessors(),
                java.lang.management.ManagementFactory.getOperatingSystemMXBean()
                        .getSystemLoadAverage());
    }

    private static String node(int n) {
        return String.format(Locale.ROOT, "gpu-node-%04d", n);
    }

    private static NodeState randomState(String name, Random random) {
        var state = NodeState.newBuilder()
                .setNodeName(name)
                .setGeneration(1)
                .setIncarnation("bench")
                .setAntiAffinity(AntiAffinity.ANTI_AFFINITY_GPU);
        String[] tenants = {"team-0", "team-1", "team-2"};
        for (int g = 0; g < 8; g++) {
            int milli = switch (random.nextInt(4)) {
                case 0 -> 0;
                case 1 -> 1000;
                default -> 100 * random.nextInt(10);
            };
            long memory = 80L << 30;
            var gpu = GpuState.newBuilder()
                    .setUuid(name + "-gpu-" + g)
                    .setIndex(g)
                    .setModel("NVIDIA H100 80GB HBM3")
                    .setMemoryBytes(memory)
                    .setMilliCapacity(1000)
                    .setMilliAllocated(milli)
                    .setMemoryAllocatedBytes(memory / 1000 * milli)
                    .setHealth(Health.HEALTH_HEALTHY)
                    .setNumaNode(g / 4)
                    .putAttributes("class", g < 4 ? "train" : "infer");
            if (milli > 0) {
                gpu.addTenants(tenants[random.nextInt(3)]);
            }
            state.addGpus(gpu);
        }
        for (int h = 0; h < 2; h++) {
            var hca = HcaState.newBuilder()
                    .setName("mlx5_" + h)
                    .setPciAddress("0000:" + (h == 0 ? "3b" : "d8") + ":00.0")
                    .setNumaNode(h)
                    .setLinkLayer("InfiniBand")
                    .setVfsTotal(4);
            for (int v = 0; v < 4; v++) {
                if (random.nextBoolean()) {
                    hca.addFreeVfIds("0000:" + (h == 0 ? "3b" : "d8") + ":00." + (v + 2));
                }
            }
            hca.setVfsFree(hca.getFreeVfIdsCount());
            state.addHcas(hca);
        }
        return state.build();
    }

    /** Serves each node's fixed state on WatchNodeState, the node named by a header the channel attaches. */
    private static final class StateServer extends NodeAgentGrpc.NodeAgentImplBase {
        private final Map<String, NodeState> states;

        StateServer(Map<String, NodeState> states) {
            this.states = states;
        }

        @Override
        public void watchNodeState(WatchNodeStateRequest request, StreamObserver<NodeState> responses) {
            responses.onNext(states.get(NODE_IN_CONTEXT.get()));
        }
    }

    private static final class NodeFromHeader implements ServerInterceptor {
        @Override
        public <Q, A> ServerCall.Listener<Q> interceptCall(
                ServerCall<Q, A> call, Metadata headers, ServerCallHandler<Q, A> next) {
            return Contexts.interceptCall(
                    Context.current().withValue(NODE_IN_CONTEXT, headers.get(NODE)), call, headers, next);
        }
    }
}
