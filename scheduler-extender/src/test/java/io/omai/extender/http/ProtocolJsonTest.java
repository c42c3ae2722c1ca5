package io.omai.extender.http;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.omai.agent.schedapi.expr.DeviceExpressions;
import io.omai.extender.bind.BearerToken;
import io.omai.extender.bind.Binder;
import io.omai.extender.cache.NodeStateCache;
import io.omai.extender.config.AgentConnection;
import io.omai.extender.config.ScoringPolicy;
import io.omai.extender.decide.Decider;
import io.omai.extender.decide.PodDemand;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * kube-scheduler's JSON, written from k8s.io/kube-scheduler/extender/v1 types.go (Go field names, no json tags)
 * and core/v1 Pod/NodeList, read and answered exactly; malformed bodies get a 400 that says what was expected.
 * No agent is known here, so every node that must fit devices fails as unresolvable.
 */
class ProtocolJsonTest {
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static NodeStateCache cache;
    private static Decider decider;
    private static ExtenderHttpServer server;
    private static ExtenderRoutes routes;

    @BeforeAll
    static void start() {
        cache = new NodeStateCache(
                endpoint -> {
                    throw new AssertionError("no agents here");
                },
                Duration.ofSeconds(1));
        decider = new Decider(cache, ScoringPolicy.DEFAULT, Duration.ofMillis(100), 1);
        var expressions = new DeviceExpressions(8);
        Binder.PodReader reader = pod -> PodDemand.of(pod, PodDemand.DEFAULT_TENANT_LABEL, expressions);
        var client = new KubernetesClientBuilder().build();
        var binder = new Binder(
                client,
                cache,
                decider,
                reader,
                new BearerToken(Optional.empty()),
                AgentConnection.of("omai-system", "omai-agent", 9401));
        routes = new ExtenderRoutes(decider, binder, reader);
        server = new ExtenderHttpServer(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), routes, () -> true)
                .start();
    }

    @AfterAll
    static void stop() {
        server.close();
        decider.close();
        cache.close();
    }

    private static byte[] fixture(String name) throws IOException {
        try (InputStream in = ProtocolJsonTest.class.getResourceAsStream("/fixtures/" + name)) {
            return in.readAllBytes();
        }
    }

    private static HttpResponse<String> post(String verb, String body) throws Exception {
        return HTTP.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/" + verb))
                        .POST(HttpRequest.BodyPublishers.ofString(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void filterArgsWithNodeNamesAreReadAsAFullPod() throws Exception {
        var args =
                ExtenderHttpServer.JSON.readValue(fixture("filter-args-nodenames.json"), Protocol.ExtenderArgs.class);

        assertThat(args.nodeNames()).containsExactly("node-a", "node-b");
        assertThat(args.nodes().isNull()).isTrue();
        var pod = PodDemand.of(args.pod(), PodDemand.DEFAULT_TENANT_LABEL, new DeviceExpressions(4));
        assertThat(pod.uid()).isEqualTo("7c1f0f3e-2b9a-4d6e-9b1e-3f7d5f8a9c01");
        assertThat(pod.tenant()).isEqualTo("research");
        assertThat(pod.containers())
                .extracting(c -> c.name() + ":" + c.milli() + ":" + c.vfs() + ":" + c.expression())
                .containsExactly("trainer:500:1:device.memory >= quantity(\"40Gi\")");
        assertThat(pod.initContainers())
                .extracting(c -> c.name() + ":" + c.milli())
                .containsExactly("warmup:1000");
    }

    @Test
    void filterAnswersWithKubeSchedulersFieldNames() throws Exception {
        HttpResponse<String> response =
                post("filter", new String(fixture("filter-args-nodenames.json"), StandardCharsets.UTF_8));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Type")).contains("application/json");
        JsonNode result = ExtenderHttpServer.JSON.readTree(response.body());
        assertThat(iterable(result.fieldNames()))
                .containsExactly("Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error");
        assertThat(result.get("Nodes").isNull()).isTrue();
        assertThat(result.get("NodeNames")).isEmpty();
        assertThat(iterable(result.get("FailedAndUnresolvableNodes").fieldNames()))
                .containsExactly("node-a", "node-b");
        assertThat(result.get("Error").asText()).isEmpty();
    }

    @Test
    void filterWithWholeNodesReturnsTheNodesThatPassUnchanged() throws Exception {
        HttpResponse<String> response =
                post("filter", new String(fixture("filter-args-nodes.json"), StandardCharsets.UTF_8));

        JsonNode result = ExtenderHttpServer.JSON.readTree(response.body());
        JsonNode sent = ExtenderHttpServer.JSON
                .readTree(fixture("filter-args-nodes.json"))
                .get("Nodes");
        assertThat(result.get("NodeNames").isNull()).isTrue();
        assertThat(result.get("Nodes")).isEqualTo(sent);
    }

    @Test
    void prioritizeAnswersAHostPriorityList() throws Exception {
        HttpResponse<String> response =
                post("prioritize", new String(fixture("filter-args-nodes.json"), StandardCharsets.UTF_8));

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(ExtenderHttpServer.JSON.readTree(response.body()))
                .isEqualTo(ExtenderHttpServer.JSON.readTree(
                        "[{\"Host\":\"node-a\",\"Score\":0},{\"Host\":\"node-b\",\"Score\":0}]"));
    }

    @Test
    void bindArgsAndResultRoundTrip() throws Exception {
        var args = ExtenderHttpServer.JSON.readValue(fixture("bind-args.json"), Protocol.ExtenderBindingArgs.class);

        assertThat(args)
                .isEqualTo(new Protocol.ExtenderBindingArgs(
                        "train-0", "team-a", "7c1f0f3e-2b9a-4d6e-9b1e-3f7d5f8a9c01", "node-a"));
        assertThat(ExtenderHttpServer.JSON.writeValueAsString(new Protocol.ExtenderBindingResult("")))
                .isEqualTo("{\"Error\":\"\"}");
        assertThat(ExtenderHttpServer.JSON.readValue(
                        ExtenderHttpServer.JSON.writeValueAsString(args), Protocol.ExtenderBindingArgs.class))
                .isEqualTo(args);
    }

    @Test
    void malformedBodiesGetA400NamingWhatWasExpected() throws Exception {
        HttpResponse<String> broken = post("filter", "{\"Pod\": {");
        assertThat(broken.statusCode()).isEqualTo(400);
        assertThat(broken.body()).startsWith("request body is not a JSON ExtenderArgs as kube-scheduler sends it:");

        HttpResponse<String> noNodes = post("filter", "{\"Pod\": {\"metadata\": {\"name\": \"p\"}, \"spec\": {}}}");
        assertThat(noNodes.statusCode()).isEqualTo(400);
        assertThat(noNodes.body()).contains("neither NodeNames (nodeCacheCapable: true) nor Nodes");

        HttpResponse<String> noPod = post("prioritize", "{\"NodeNames\": [\"node-a\"]}");
        assertThat(noPod.statusCode()).isEqualTo(400);
        assertThat(noPod.body()).startsWith("ExtenderArgs has no Pod");

        HttpResponse<String> badBind = post("bind", "{\"PodName\": \"p\"}");
        assertThat(badBind.statusCode()).isEqualTo(400);
        assertThat(badBind.body()).contains("needs PodName, PodNamespace, PodUID and Node");

        HttpResponse<String> get = HTTP.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/filter"))
                        .GET()
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(get.statusCode()).isEqualTo(405);
        assertThat(get.headers().firstValue("Allow")).contains("POST");
    }

    @Test
    void aPodWithAnUnplaceableShareIsAnErrorInTheResult() throws Exception {
        String body = ExtenderHttpServer.JSON.writeValueAsString(Map.of(
                "Pod",
                Map.of(
                        "metadata",
                        Map.of("name", "odd", "namespace", "team-a", "uid", "u1"),
                        "spec",
                        Map.of(
                                "containers",
                                List.of(Map.of(
                                        "name",
                                        "c",
                                        "resources",
                                        Map.of("limits", Map.of("omai.io/milli-gpu", "1500")))))),
                "NodeNames",
                List.of("node-a")));

        JsonNode result = ExtenderHttpServer.JSON.readTree(post("filter", body).body());

        assertThat(result.get("Error").asText())
                .isEqualTo("pod team-a/odd container 'c': omai.io/milli-gpu 1500 is not a share below 1000 nor a "
                        + "multiple of 1000; expected a share below 1000 or a multiple of 1000 (whole GPUs)");
    }

    private static List<String> iterable(java.util.Iterator<String> names) {
        Iterable<String> it = () -> names;
        return StreamSupport.stream(it.spliterator(), false).toList();
    }
}
