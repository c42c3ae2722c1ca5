package io.omai.extender;

import static io.omai.extender.Cluster.args;
import static io.omai.extender.Cluster.pod;
import static io.omai.extender.Cluster.postJson;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.omai.agent.schedapi.v1.WatchNodeStateRequest;
import io.omai.extender.config.AgentConnection;
import io.omai.extender.config.ScoringPolicy;
import io.omai.placement.AntiAffinityPolicy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The extender as kube-scheduler meets it: real agents' scheduler API servers over TCP, discovered from
 * EndpointSlices in fabric8's mock API server, filter/prioritize/bind over HTTP with kube-scheduler's JSON.
 */
@EnableKubernetesMockClient(crud = true)
class ExtenderEndToEndTest {
    static KubernetesClient client;
    static KubernetesMockServer server;

    private final WatchTap tapA = new WatchTap();
    private final WatchTap tapB = new WatchTap();
    private TestAgent nodeA;
    private TestAgent nodeB;
    private SchedulerExtender extender;
    private final List<AutoCloseable> closers = new ArrayList<>();

    @TempDir
    Path dir;

    @BeforeEach
    void start() throws Exception {
        nodeA = TestAgent.start("node-a", 4, AntiAffinityPolicy.GPU, tapA);
        nodeB = TestAgent.start("node-b", 4, AntiAffinityPolicy.GPU, tapB);
        Cluster.publish(client, nodeA);
        Cluster.publish(client, nodeB);
        Path token = dir.resolve("token");
        Files.writeString(token, "token-one\n");
        var agents = AgentConnection.of(Cluster.NAMESPACE, Cluster.SERVICE, 7443)
                .withTokenFile(token)
                .withDeadlines(Duration.ofMillis(500), Duration.ofSeconds(2), 60, Duration.ofMillis(400));
        extender = SchedulerExtender.start(ExtenderSettings.of(0, client, agents));
        closers.add(extender);
        closers.add(nodeA);
        closers.add(nodeB);
        awaitLive("node-a");
        awaitLive("node-b");
    }

    @AfterEach
    void stop() throws Exception {
        for (AutoCloseable closer : closers) {
            closer.close();
        }
        client.discovery().v1().endpointSlices().inNamespace(Cluster.NAMESPACE).delete();
        client.pods().inAnyNamespace().delete();
    }

    private void awaitLive(String node) {
        await().atMost(Duration.ofSeconds(10))
                .until(() -> extender.cache().link(node).map(l -> l.live()).orElse(false));
    }

    private void awaitGeneration(String node, long generation) {
        await().atMost(Duration.ofSeconds(10))
                .until(() -> extender.cache()
                                .link(node)
                                .flatMap(l -> l.latest())
                                .map(c -> c.state().getGeneration())
                                .orElse(-1L)
                        >= generation);
    }

    private JsonNode filter(Pod pod, String... nodes) throws Exception {
        return postJson(extender.port(), "filter", args(pod, List.of(nodes)));
    }

    @Test
    void filterPassesFittingNodesAndExplainsTheOthersAsKubectlDescribeShowsThem() throws Exception {
        long generation = 0;
        for (int i = 0; i < 4; i++) {
            generation = nodeA.inventory()
                    .allocate(TestAgent.uuid("node-a", i), "team-a", 600, 48 * TestAgent.GIB)
                    .generation();
        }
        awaitGeneration("node-a", generation);

        JsonNode result = filter(pod("team-a", "share", Map.of(), 500), "node-a", "node-b", "node-c");

        assertThat(result.get("NodeNames")).extracting(JsonNode::asText).containsExactly("node-b");
        assertThat(result.get("FailedNodes").get("node-a").asText())
                .isEqualTo("omai: container 'c0' (500 milli-GPU): 4 GPUs without enough free milli-GPU or memory; "
                        + "no GPU can take 500 milli");
        assertThat(result.get("FailedAndUnresolvableNodes").get("node-c").asText())
                .contains("no OMAI node agent is known on this node");
        assertThat(result.get("Error").asText()).isEmpty();
    }

    @Test
    void anotherTenantsGpusAreUnresolvableSoPreemptionDoesNotTryThem() throws Exception {
        long generation = 0;
        for (int i = 0; i < 4; i++) {
            generation = nodeB.inventory()
                    .allocate(TestAgent.uuid("node-b", i), "team-b", 100, 8 * TestAgent.GIB)
                    .generation();
        }
        awaitGeneration("node-b", generation);

        JsonNode result = filter(pod("team-a", "share", Map.of(), 500), "node-a", "node-b");

        assertThat(result.get("NodeNames")).extracting(JsonNode::asText).containsExactly("node-a");
        assertThat(result.get("FailedNodes").size()).isZero();
        assertThat(result.get("FailedAndUnresolvableNodes").get("node-b").asText())
                .isEqualTo("omai: container 'c0' (500 milli-GPU): 4 GPUs held by another tenant (anti-affinity); "
                        + "no GPU can take 500 milli");
        // the tenant label wins over the namespace, as on the agents
        JsonNode labelled = filter(pod("ns-x", "labelled", Map.of("omai.io/tenant", "team-b"), 500), "node-b");
        assertThat(labelled.get("NodeNames")).extracting(JsonNode::asText).containsExactly("node-b");
    }

    @Test
    void prioritizeBinPacksSharesOntoThePartlyUsedNode() throws Exception {
        long generation = nodeA.inventory()
                .allocate(TestAgent.uuid("node-a", 0), "team-a", 300, 24 * TestAgent.GIB)
                .generation();
        awaitGeneration("node-a", generation);

        JsonNode scores = postJson(
                extender.port(),
                "prioritize",
                args(pod("team-a", "share", Map.of(), 500), List.of("node-a", "node-b")));

        assertThat(scores).hasSize(2);
        assertThat(scores.get(0).get("Host").asText()).isEqualTo("node-a");
        long a = scores.get(0).get("Score").asLong();
        long b = scores.get(1).get("Score").asLong();
        assertThat(a).isGreaterThan(b).isBetween(0L, 10L);
        assertThat(b).isBetween(0L, 10L);
    }

    @Test
    void bindReservesOnTheAgentThenCreatesTheBindingAndRetriesIdempotently() throws Exception {
        Pod pod = client.pods()
                .inNamespace("team-a")
                .resource(pod("team-a", "p1", Map.of(), 500))
                .create();
        String binding = "/api/v1/namespaces/team-a/pods/p1/binding";
        server.expect().post().withPath(binding).andReturn(201, "{}").times(2);

        JsonNode first = bind(pod, "node-a");
        JsonNode again = bind(pod, "node-a");

        assertThat(first.get("Error").asText()).isEmpty();
        assertThat(again.get("Error").asText()).isEmpty();
        assertThat(nodeA.book().outstanding()).hasSize(1);
        var reservation = nodeA.book().outstanding().getFirst();
        String uid = pod.getMetadata().getUid();
        assertThat(reservation.podUid()).isEqualTo(uid);
        assertThat(reservation.idempotencyKey()).isEqualTo(uid);
        assertThat(reservation.tenant()).isEqualTo("team-a");
        assertThat(tapA.authorizations).contains("omai.scheduler.v1.NodeAgent/Reserve Bearer token-one");
        assertThat(server.getLastRequest().getPath()).isEqualTo(binding);
        assertThat(server.getLastRequest().getBody().readUtf8())
                .contains("\"kind\":\"Binding\"", "\"uid\":\"" + uid + "\"", "\"name\":\"node-a\"");
    }

    @Test
    void aFailedBindingReleasesTheReservation() throws Exception {
        Pod pod = client.pods()
                .inNamespace("team-a")
                .resource(pod("team-a", "p2", Map.of(), 1000))
                .create();
        server.expect()
                .post()
                .withPath("/api/v1/namespaces/team-a/pods/p2/binding")
                .andReturn(403, "{\"kind\":\"Status\",\"message\":\"pods \\\"p2\\\" is forbidden\"}")
                .once();

        JsonNode result = bind(pod, "node-a");

        assertThat(result.get("Error").asText()).contains("binding pod team-a/p2 to node node-a failed: HTTP 403");
        await().atMost(Duration.ofSeconds(5))
                .until(() -> nodeA.book().outstanding().isEmpty());
    }

    @Test
    void aLostRaceForTheLastShareReturnsAnErrorAndBindsNothing() throws Exception {
        for (int i = 1; i < 4; i++) {
            nodeA.inventory().allocate(TestAgent.uuid("node-a", i), "team-a", 1000, 80 * TestAgent.GIB);
        }
        long generation = nodeA.inventory()
                .allocate(TestAgent.uuid("node-a", 0), "team-a", 500, 40 * TestAgent.GIB)
                .generation();
        awaitGeneration("node-a", generation);
        // the extender's view goes stale; another scheduler takes the last half GPU behind its back
        tapA.frozen = true;
        var rival = io.omai.agent.schedapi.v1.ReserveRequest.newBuilder()
                .setIdempotencyKey("rival")
                .setPodUid("uid-rival")
                .setTenant("team-a")
                .addContainers(io.omai.agent.schedapi.v1.ContainerAssignment.newBuilder()
                        .setName("c0")
                        .addGpuUuids(TestAgent.uuid("node-a", 0))
                        .setMilli(500))
                .build();
        extender.cache().link("node-a").orElseThrow().blocking().reserve(rival);
        Pod pod = client.pods()
                .inNamespace("team-a")
                .resource(pod("team-a", "late", Map.of(), 500))
                .create();

        JsonNode result = bind(pod, "node-a");

        assertThat(result.get("Error").asText())
                .contains("node node-a agent refused the reservation for pod team-a/late", "kube-scheduler will retry");
        assertThat(nodeA.book().outstanding()).extracting(r -> r.podUid()).containsExactly("uid-rival");
        assertThat(server.getLastRequest().getPath()).doesNotContain("/binding");
        // kubectl describe pod shows why
        await().atMost(Duration.ofSeconds(5))
                .until(() -> client.v1().events().inNamespace("team-a").list().getItems().stream()
                        .anyMatch(e -> e.getReason().equals("OMAIReserveRefused")
                                && e.getInvolvedObject().getName().equals("late")
                                && e.getType().equals("Warning")));
    }

    @Test
    void aDroppedStreamResumesFromTheLastGenerationAndIncarnation() throws Exception {
        long generation = nodeA.inventory()
                .allocate(TestAgent.uuid("node-a", 0), "team-a", 200, 16 * TestAgent.GIB)
                .generation();
        awaitGeneration("node-a", generation);
        var seen = extender.cache()
                .link("node-a")
                .orElseThrow()
                .latest()
                .orElseThrow()
                .state();

        nodeA.stop();
        await().atMost(Duration.ofSeconds(5))
                .until(() -> !extender.cache().link("node-a").orElseThrow().live());
        nodeA.restart();
        awaitLive("node-a");

        WatchNodeStateRequest resumed = tapA.requests.getLast();
        assertThat(resumed.getAfterGeneration()).isEqualTo(seen.getGeneration());
        assertThat(resumed.getIncarnation()).isEqualTo(seen.getIncarnation());
        nodeA.inventory().allocate(TestAgent.uuid("node-a", 1), "team-a", 300, 24 * TestAgent.GIB);
        // a restarted agent numbers generations anew under a new incarnation: wait for the content
        await().atMost(Duration.ofSeconds(10))
                .until(() -> extender.cache()
                                .link("node-a")
                                .flatMap(l -> l.latest())
                                .map(c -> c.state().getGpus(1).getMilliAllocated())
                                .orElse(0)
                        == 300);
    }

    @Test
    void aNodeWhoseStreamIsDownIsAnsweredByFitElseUnresolvable() throws Exception {
        tapB.refuseWatch = true;
        nodeB.stop();
        nodeB.restart();
        await().atMost(Duration.ofSeconds(5))
                .until(() -> !extender.cache().link("node-b").orElseThrow().live());

        JsonNode viaFit = filter(pod("team-a", "share", Map.of(), 500), "node-b");
        assertThat(viaFit.get("NodeNames")).extracting(JsonNode::asText).containsExactly("node-b");

        nodeB.stop();
        JsonNode down = filter(pod("team-a", "share", Map.of(), 500), "node-b");
        assertThat(down.get("NodeNames")).isEmpty();
        assertThat(down.get("FailedAndUnresolvableNodes").get("node-b").asText())
                .startsWith("omai: node agent unreachable");
    }

    @Test
    void podsWithoutOmaiDevicesPassEveryNodeAndBadSelectorsAreAnError() throws Exception {
        JsonNode plain = filter(pod("team-a", "cpu-only", Map.of()), "node-a", "node-c");
        assertThat(plain.get("NodeNames")).extracting(JsonNode::asText).containsExactly("node-a", "node-c");

        Pod bad = pod("team-a", "bad", Map.of(), 500);
        bad.getMetadata().setAnnotations(Map.of("omai.io/gpu-selector", "device.memroy > 1"));
        JsonNode result = filter(bad, "node-a");
        assertThat(result.get("Error").asText())
                .startsWith("annotation omai.io/gpu-selector of pod team-a/bad does not compile at line 1");
    }

    @Test
    void theGpuSelectorKeepsPodsOffGpusThatDoNotMatch() throws Exception {
        Pod infer = pod("team-a", "infer", Map.of(), 1000, 1000, 1000);
        infer.getMetadata().setAnnotations(Map.of("omai.io/gpu-selector", "device.class == 'infer'"));

        JsonNode result = filter(infer, "node-a");

        assertThat(result.get("FailedAndUnresolvableNodes").get("node-a").asText())
                .isEqualTo("omai: container 'c2' (1000 milli-GPU): 2 GPUs without enough free milli-GPU or memory; "
                        + "2 GPUs not matching omai.io/gpu-selector; no GPU can take 1000 milli");
    }

    @Test
    void spreadScoringPrefersTheEmptierNode() throws Exception {
        extender.close();
        var agents = AgentConnection.of(Cluster.NAMESPACE, Cluster.SERVICE, 7443);
        extender = SchedulerExtender.start(ExtenderSettings.of(0, client, agents)
                .withScoring(new ScoringPolicy(ScoringPolicy.Strategy.SPREAD, 5, 3, 2)));
        closers.add(extender);
        long generation = nodeA.inventory()
                .allocate(TestAgent.uuid("node-a", 0), "team-a", 300, 24 * TestAgent.GIB)
                .generation();
        awaitLive("node-a");
        awaitLive("node-b");
        awaitGeneration("node-a", generation);

        JsonNode scores = postJson(
                extender.port(),
                "prioritize",
                args(pod("team-a", "share", Map.of(), 500), List.of("node-a", "node-b")));

        assertThat(scores.get(1).get("Score").asLong())
                .isGreaterThan(scores.get(0).get("Score").asLong());
    }

    private JsonNode bind(Pod pod, String node) throws Exception {
        return postJson(
                extender.port(),
                "bind",
                Cluster.JSON.writeValueAsString(Map.of(
                        "PodName",
                        pod.getMetadata().getName(),
                        "PodNamespace",
                        pod.getMetadata().getNamespace(),
                        "PodUID",
                        pod.getMetadata().getUid(),
                        "Node",
                        node)));
    }
}
