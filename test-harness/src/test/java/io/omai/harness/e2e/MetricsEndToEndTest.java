package io.omai.harness.e2e;

import static io.omai.harness.e2e.SimulatedGpuNode.GPU_MEMORY;
import static io.omai.harness.e2e.SimulatedGpuNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.omai.agent.config.ConfigLoader;
import io.omai.simulator.launcher.AgentJvm;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalDouble;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent as {@code omai-agent run} starts it, probed and scraped over HTTP while the kubelet simulator
 * registers it, admits a container, restarts and forgets the pod: the wiring of the metrics into the daemon.
 */
class MetricsEndToEndTest {
    private static final Duration PATIENCE = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    private final HttpClient http = HttpClient.newHttpClient();

    @AfterEach
    void closeClient() {
        http.close();
    }

    @Test
    void probesAndSeriesFollowRegistrationAdmissionKubeletRestartsAndRelease() throws Exception {
        try (SimulatedGpuNode node = new SimulatedGpuNode(dir, 2, false)) {
            int port = ConfigLoader.load(node.config).metrics().port();
            AgentJvm agent = node.startAgent();

            assertThat(get(port, "/healthz").statusCode()).isEqualTo(200);
            // readiness says "starting" until the agent has marked its start, a moment after it logged it
            HttpResponse<String> notReady = await().atMost(PATIENCE)
                    .until(
                            () -> get(port, "/readyz"),
                            response -> !response.body().startsWith("starting"));
            assertThat(notReady.statusCode()).as("no kubelet yet").isEqualTo(503);
            assertThat(notReady.body()).startsWith("kubelet: not registered with kubelet yet");

            node.startKubelet();
            node.kubelet.awaitRegistration(RESOURCE, PATIENCE);
            await().atMost(PATIENCE).until(() -> get(port, "/readyz").statusCode() == 200);
            node.kubelet.awaitDevices(RESOURCE, devices -> devices.size() == 2000, PATIENCE);

            node.kubelet.admit("team-a", "train-0", "main", RESOURCE, 250);
            String[] train = {"namespace=\"team-a\"", "pod=\"train-0\"", "container=\"main\""};
            String named = await().atMost(PATIENCE)
                    .until(
                            () -> scrape(port),
                            text -> value(text, "omai_allocation_memory_limit_bytes", train)
                                    .isPresent());
            assertThat(value(named, "omai_allocation_memory_limit_bytes", train))
                    .hasValue(GPU_MEMORY / 4);
            assertThat(value(named, "omai_allocation_compute_quota_ratio", train))
                    .hasValue(0.25);
            assertThat(value(named, "omai_allocate_duration_seconds_count")).hasValue(1);
            assertThat(value(named, "omai_preferred_allocation_duration_seconds_count"))
                    .hasValue(1);
            assertThat(value(named, "omai_kubelet_registrations_total")).hasValue(1);
            assertThat(value(named, "omai_kubelet_restarts_total")).hasValue(0);
            assertThat(sum(named, "omai_gpu_compute_allocated_ratio")).isEqualTo(0.25);
            assertThat(sum(named, "omai_gpu_memory_total_bytes")).isEqualTo(2 * GPU_MEMORY);
            assertThat(sum(named, "omai_gpu_healthy")).isEqualTo(2);
            assertThat(value(named, "omai_gpu_utilization_ratio", "gpu=\"0\"").orElseThrow())
                    .as("the simulated NVML answers utilisation")
                    .isBetween(0.0, 1.0);

            node.kubelet.restart();
            node.kubelet.awaitRegistration(RESOURCE, PATIENCE);
            String restarted = await().atMost(PATIENCE)
                    .until(
                            () -> scrape(port),
                            text -> value(text, "omai_kubelet_restarts_total").orElse(0) == 1);
            assertThat(value(restarted, "omai_kubelet_registrations_total")).hasValue(2);
            await().atMost(PATIENCE).until(() -> get(port, "/readyz").statusCode() == 200);

            node.kubelet.podResources().removePod("team-a", "train-0");
            String released =
                    await().atMost(PATIENCE).until(() -> scrape(port), text -> !text.contains("pod=\"train-0\""));
            assertThat(sum(released, "omai_gpu_compute_allocated_ratio")).isZero();
            assertThat(agent.alive()).isTrue();
        }
    }

    private HttpResponse<String> get(int port, String path) throws Exception {
        return http.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                        .GET()
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private String scrape(int port) throws Exception {
        HttpResponse<String> response = get(port, "/metrics");
        assertThat(response.statusCode()).isEqualTo(200);
        return response.body();
    }

    /** The value of the one sample of {@code name} whose label list contains every {@code label="value"} given. */
    private static OptionalDouble value(String scrape, String name, String... labels) {
        List<String> lines = samples(scrape, name, labels);
        assertThat(lines)
                .as("samples of %s with %s", name, Arrays.toString(labels))
                .hasSizeLessThan(2);
        return lines.isEmpty()
                ? OptionalDouble.empty()
                : OptionalDouble.of(Double.parseDouble(
                        lines.getFirst().substring(lines.getFirst().lastIndexOf(' ') + 1)));
    }

    private static double sum(String scrape, String name) {
        return samples(scrape, name).stream()
                .mapToDouble(line -> Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1)))
                .sum();
    }

    private static List<String> samples(String scrape, String name, String... labels) {
        return scrape.lines()
                .filter(line -> line.startsWith(name + "{") || line.startsWith(name + " "))
                .filter(line -> Arrays.stream(labels).allMatch(line::contains))
                .toList();
    }
}
