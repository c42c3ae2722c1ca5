package io.omai.agent.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.config.AgentConfig;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class MetricsServerTest {
    private final HttpClient http = HttpClient.newHttpClient();
    private final AgentMetrics metrics = new AgentMetrics("node-1", System::nanoTime);
    private final AtomicReference<Optional<String>> kubelet = new AtomicReference<>(Optional.of("not registered"));
    private final AtomicReference<Optional<String>> loop = new AtomicReference<>(Optional.empty());
    private MetricsServer server;

    @BeforeEach
    void start() {
        metrics.health().addReadiness("kubelet", kubelet::get);
        metrics.health().addLiveness("control-loop", loop::get);
        server = MetricsServer.start(new AgentConfig.Metrics("127.0.0.1", 0), metrics);
    }

    @AfterEach
    void stop() {
        server.close();
        metrics.close();
        http.close();
    }

    @Test
    void metricsAreServedInThePrometheusTextFormat() throws Exception {
        metrics.controllerTickRecorder().accept(1_000_000);
        HttpResponse<String> response = get("/metrics");
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Type")).hasValue(MetricsServer.PROMETHEUS_TEXT);
        assertThat(new Scrape(response.body()).get("omai_controller_tick_duration_seconds_count"))
                .isEqualTo(1);
    }

    @Test
    void readinessWaitsForTheStartThenFollowsItsChecks() throws Exception {
        assertThat(get("/readyz")).satisfies(r -> {
            assertThat(r.statusCode()).isEqualTo(503);
            assertThat(r.body()).isEqualTo("starting\n");
        });
        metrics.health().markStarted();
        assertThat(get("/readyz")).satisfies(r -> {
            assertThat(r.statusCode()).isEqualTo(503);
            assertThat(r.body()).isEqualTo("kubelet: not registered\n");
        });
        kubelet.set(Optional.empty());
        assertThat(get("/readyz")).satisfies(r -> {
            assertThat(r.statusCode()).isEqualTo(200);
            assertThat(r.body()).isEqualTo("ok\n");
        });
        metrics.health().markStopping();
        assertThat(get("/readyz").body()).isEqualTo("stopping\n");
    }

    @Test
    void livenessFailsOnlyWhileALoopIsStuck() throws Exception {
        assertThat(get("/healthz").statusCode())
                .as("alive while still starting")
                .isEqualTo(200);
        loop.set(Optional.of("no iteration for 5000 ms"));
        assertThat(get("/healthz")).satisfies(r -> {
            assertThat(r.statusCode()).isEqualTo(503);
            assertThat(r.body()).isEqualTo("control-loop: no iteration for 5000 ms\n");
        });
        loop.set(Optional.empty());
        assertThat(get("/healthz").statusCode()).isEqualTo(200);
    }

    @Test
    void otherPathsAndMethodsAreRefusedClearly() throws Exception {
        assertThat(get("/").statusCode()).isEqualTo(404);
        assertThat(get("/metricsx").statusCode()).isEqualTo(404);
        HttpResponse<String> post = http.send(
                HttpRequest.newBuilder(uri("/metrics"))
                        .POST(HttpRequest.BodyPublishers.ofString("x"))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(post.statusCode()).isEqualTo(405);
        assertThat(post.headers().firstValue("Allow")).hasValue("GET, HEAD");
        HttpResponse<Void> head = http.send(
                HttpRequest.newBuilder(uri("/healthz"))
                        .method("HEAD", HttpRequest.BodyPublishers.noBody())
                        .build(),
                HttpResponse.BodyHandlers.discarding());
        assertThat(head.statusCode()).isEqualTo(200);
    }

    @Test
    void aPortInUseIsReportedWithTheConfigKeys() {
        InetSocketAddress taken = new InetSocketAddress(InetAddress.getLoopbackAddress(), server.port());
        assertThatThrownBy(() -> MetricsServer.start(taken, metrics::scrape, metrics.health()))
                .isInstanceOf(UncheckedIOException.class)
                .hasMessageContaining("cannot serve metrics on")
                .hasMessageContaining("metrics.address/metrics.port");
    }

    private HttpResponse<String> get(String path) throws Exception {
        return http.send(HttpRequest.newBuilder(uri(path)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    private URI uri(String path) {
        return URI.create("http://127.0.0.1:" + server.port() + path);
    }
}
