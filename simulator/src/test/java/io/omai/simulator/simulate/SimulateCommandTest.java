package io.omai.simulator.simulate;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.metrics.contract.Promtool;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The main job, as an operator runs it: {@code simulate} in its own JVM for a bounded time, checked by what it
 * printed and by what its endpoints served while it ran (one run for every test here). Bands are wide (2 shared
 * cores); the exact control accuracy is the compute harness's business.
 */
class SimulateCommandTest {
    private static final Pattern POD_ROW = Pattern.compile(
            "(?m)^((?:research|team-[ab])/[a-z]+-0)\\s+(\\S+)\\s+"
                    + "(a-[0-9a-f]{16})\\s+(\\d)\\s+([\\d.]+)%\\s+([\\d.]+)%\\s+(\\d+) ms/s\\s+(\\S+ \\S+)/(\\S+ \\S+)\\s+(\\d+)$");
    private static final Pattern METRICS_URL = Pattern.compile("simulate: metrics on http://127\\.0\\.0\\.1:(\\d+)/");

    @TempDir
    static Path dir;

    private static String out;
    private static int exitValue;
    private static Path work;
    /** What the endpoints answered once the pods ran: path → "status\nbody". */
    private static final Map<String, String> served = new HashMap<>();

    @BeforeAll
    static void runSimulateWhileScrapingIt() throws Exception {
        work = dir.resolve("node");
        Path log = dir.resolve("simulate.out");
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process process = new ProcessBuilder(
                        java.toString(),
                        "--enable-native-access=ALL-UNNAMED",
                        "-Domai.native.build=" + SimNode.nativeBuildDir(),
                        "-cp",
                        System.getProperty("java.class.path"),
                        "io.omai.agent.Main",
                        "simulate",
                        "--duration",
                        "12s",
                        "--plain",
                        "--metrics-port",
                        "0",
                        "--sched-api-port",
                        "0",
                        "--work-dir",
                        work.toString())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        try {
            // Once the first table is out every pod is admitted and running: ask the endpoints the header names.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            String sofar = "";
            while (process.isAlive() && System.nanoTime() < deadline && !sofar.contains("OMAI simulated node")) {
                Thread.sleep(200);
                sofar = Files.readString(log, StandardCharsets.UTF_8);
            }
            Matcher port = METRICS_URL.matcher(sofar);
            if (process.isAlive() && port.find()) {
                try (HttpClient http = HttpClient.newBuilder()
                        .connectTimeout(Duration.ofSeconds(5))
                        .build()) {
                    for (String path : List.of("/metrics", "/healthz", "/readyz")) {
                        HttpResponse<String> response = http.send(
                                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port.group(1) + path))
                                        .timeout(Duration.ofSeconds(10))
                                        .build(),
                                HttpResponse.BodyHandlers.ofString());
                        served.put(path, response.statusCode() + "\n" + response.body());
                    }
                }
            }
            boolean finished = process.waitFor(120, TimeUnit.SECONDS);
            out = Files.readString(log, StandardCharsets.UTF_8);
            assertThat(finished)
                    .as("simulate ends by itself after --duration:%n%s", out)
                    .isTrue();
            exitValue = process.exitValue();
        } finally {
            process.destroyForcibly();
        }
    }

    @Test
    void simulatedNodeAdmitsTwoTenantsEnforcesTheirQuotasAndCleansUp() {
        assertThat(exitValue).as(out).isZero();
        assertThat(out)
                .contains(
                        "simulate: admitted research/trainer-0",
                        "simulate: admitted team-b/infer-0",
                        "simulate: admitted team-a/notebook-0",
                        "simulate: admitted team-b/batch-0");
        String last = out.substring(out.lastIndexOf("OMAI simulated node"));
        assertThat(last).containsPattern("metrics http://127\\.0\\.0\\.1:\\d+/metrics \\(also /healthz, /readyz\\)");

        // Each GPU holds one tenant's pods only; the column says which memory is which.
        assertThat(last).containsPattern("\\nGPU\\s+UUID\\s+HEALTH\\s+MILLI\\s+MEMORY quotas/card\\s+TENANTS");
        assertThat(last)
                .containsPattern("\\n0\\s+GPU-[0-9a-f-]{36}\\s+Healthy\\s+900/1000\\s+72\\.00 GiB/80\\.00 GiB"
                        + "\\s+team-a\\s*\\n")
                .containsPattern("\\n1\\s+GPU-[0-9a-f-]{36}\\s+Healthy\\s+750/1000\\s+60\\.00 GiB/80\\.00 GiB"
                        + "\\s+team-b\\s*\\n");

        Matcher rows = POD_ROW.matcher(last);
        int seen = 0;
        while (rows.find()) {
            seen++;
            String pod = rows.group(1);
            double quota = Double.parseDouble(rows.group(5));
            double achieved = Double.parseDouble(rows.group(6));
            assertThat(achieved)
                    .as("%s achieved vs quota %s%% in%n%s", pod, quota, last)
                    .isLessThanOrEqualTo(quota + 12)
                    .isGreaterThanOrEqualTo(5);
            assertThat(rows.group(8))
                    .as("%s holds the memory its workload allocated", pod)
                    .isNotEqualTo("0 B");
            assertThat(rows.group(10)).as("%s denied allocations", pod).isEqualTo("0");
            assertThat(out)
                    .as("the allocation id shown is the one admitted for %s", pod)
                    .containsPattern(
                            "simulate: admitted " + Pattern.quote(pod) + " .* as allocation " + rows.group(3) + " ");
        }
        assertThat(seen).as("pod rows in%n%s", last).isEqualTo(4);
        assertThat(last).containsPattern("4.00 GiB/40.00 GiB");
        assertThat(List.of(last.split("\n")).stream()
                        .filter(l -> l.matches("0000:3b:\\S+.*Healthy\\s*"))
                        .count())
                .as("4 VFs of the simulated HCA")
                .isEqualTo(4);
        // The trainer took one VF through the agent's omai.io/ib-vf plugin; the table names it as its holder.
        assertThat(out).containsPattern("simulate: admitted research/trainer-0 .* with VF (0000:3b:\\S+)");
        assertThat(List.of(last.split("\n")).stream()
                        .filter(l -> l.matches("0000:3b:\\S+\\s+0000:3b:00\\.0\\s+"
                                + "mlx5_\\d+\\s+research/trainer-0\\s+Healthy\\s*"))
                        .count())
                .as("one VF row allocated to the trainer in%n%s", last)
                .isEqualTo(1);
        assertThat(last).containsPattern("\\nVF\\s+PF\\s+RDMA\\s+ALLOCATED\\s+HEALTH");

        assertThat(out).contains("simulate: stopped; removed " + work);
        assertThat(work).doesNotExist();
    }

    @Test
    void tenantsAreTheAgentsOwnIdentificationOfThePodsInTheKubernetesApi() {
        // research/trainer-0 carries omai.io/tenant=team-a: only the agent's informer, reading the label, makes
        // it team-a (its namespace would say "research"); the others have no label and belong to their namespace.
        assertThat(out).contains("simulate: admitted research/trainer-0 (the agent identified tenant team-a;");
        String last = out.substring(out.lastIndexOf("OMAI simulated node"));
        Map<String, String> tenantByPod = new HashMap<>();
        Matcher rows = POD_ROW.matcher(last);
        while (rows.find()) {
            tenantByPod.put(rows.group(1), rows.group(2));
        }
        assertThat(tenantByPod)
                .containsExactlyInAnyOrderEntriesOf(Map.of(
                        "research/trainer-0",
                        "team-a",
                        "team-b/infer-0",
                        "team-b",
                        "team-a/notebook-0",
                        "team-a",
                        "team-b/batch-0",
                        "team-b"));

        String metrics = body("/metrics");
        assertThat(metrics)
                .containsPattern("(?m)^omai_node_tenants\\{node=\"[^\"]+\",tenant=\"team-a\"\\} 2\\.0$")
                .containsPattern("(?m)^omai_node_tenants\\{node=\"[^\"]+\",tenant=\"team-b\"\\} 2\\.0$")
                .containsPattern("(?m)^omai_allocation_compute_quota_ratio\\{[^}]*namespace=\"research\","
                        + "node=\"[^\"]+\",pod=\"trainer-0\",tenant=\"team-a\",uuid=\"GPU-[^\"]+\"\\} 0\\.6$")
                .doesNotContain("tenant=\"\"");
    }

    @Test
    void theAdvertisedEndpointsAnswer() {
        assertThat(served.get("/healthz")).as("/healthz").startsWith("200\n");
        assertThat(served.get("/readyz")).as("/readyz").startsWith("200\n");
        assertThat(body("/metrics")).contains("# TYPE omai_gpu_", "omai_allocation_");
    }

    @Test
    void theServedMetricsPassPromtoolCheckMetrics() {
        String scrape = body("/metrics");
        assertThat(Promtool.checkMetrics(scrape))
                .as("promtool check metrics about simulate's scrape:\n%s", scrape)
                .isEmpty();
    }

    /** The body /metrics (or another path) served with status 200 while simulate ran. */
    private static String body(String path) {
        String answer = served.get(path);
        assertThat(answer)
                .as("%s was served while simulate ran; its output:%n%s", path, out)
                .isNotNull();
        assertThat(answer).as(path).startsWith("200\n");
        return answer.substring(answer.indexOf('\n') + 1);
    }

    @Test
    void badOptionsAreRefusedWithWhatWasExpected() throws IOException, InterruptedException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process process = new ProcessBuilder(
                        java.toString(),
                        "--enable-native-access=ALL-UNNAMED",
                        "-cp",
                        System.getProperty("java.class.path"),
                        "io.omai.agent.Main",
                        "simulate",
                        "--duration",
                        "soon")
                .redirectErrorStream(true)
                .start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).isNotZero();
        assertThat(output).contains("'soon' is not a duration; expected a whole number with ms, s, m or h");
    }
}
