package io.omai.harness.e2e;

import static io.omai.harness.e2e.SimulatedGpuNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.metrics.contract.DocumentedFamilies;
import io.omai.agent.metrics.contract.ExpositionText;
import io.omai.agent.metrics.contract.Promtool;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.simulator.kubelet.KubeletSimulator;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The metrics contract, held against {@code omai-agent run} on a simulated node with allocations in use: the scrape
 * passes promtool, has every family docs/operations.md documents (with its type, exactly its labels, a non-empty
 * {@code uuid} and {@code node} where documented, and HELP), counters never go backwards across scrapes — also not
 * after a container forges its usage file's totals down — and every family the Grafana dashboard and the alert
 * rules select is in it.
 */
class MetricsContractTest {
    private static final Duration PATIENCE = Duration.ofSeconds(30);
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    /** Families the dashboard or the rules use that this node cannot have, and why. */
    private static final Map<String, String> NOT_ON_THIS_NODE = Map.of(
            "omai_vf_allocated", "no InfiniBand VFs on the simulated node (SimulateCommandTest scrapes VFs)",
            "omai_vf_healthy", "no InfiniBand VFs on the simulated node",
            "omai_vf_qos_rate_limit_supported", "no InfiniBand VFs on the simulated node",
            "jvm_gc_pause_seconds", "present only after the agent's first GC pause",
            "omai_node_tenants",
                    "no tenant known: omai-agent run learns tenants from scheduler claims (SimulateCommandTest "
                            + "scrapes them)",
            "up", "Prometheus' own series, not the agent's");

    @TempDir
    Path dir;

    private final HttpClient http = HttpClient.newHttpClient();

    @AfterEach
    void closeClient() {
        http.close();
    }

    @Test
    void aRunningAgentsScrapeKeepsTheDocumentedContract() throws Exception {
        try (SimulatedGpuNode node = new SimulatedGpuNode(dir, 2)) {
            int port = ConfigLoader.load(node.config).metrics().port();
            node.startAgent();
            node.kubelet.awaitRegistration(RESOURCE, PATIENCE);
            KubeletSimulator.Admission train = node.kubelet.admit("team-a", "train-0", "main", RESOURCE, 250);
            KubeletSimulator.Admission infer = node.kubelet.admit("team-b", "infer-0", "srv", RESOURCE, 500);
            Path usage = node.allocationDir(train.response().getEnvsMap().get("OMAI_ALLOCATION_ID"))
                    .resolve(AllocationFiles.USAGE);
            String[] trainGpuTime = {"omai_allocation_gpu_time_seconds_total", "pod", "train-0"};
            ExpositionText first = await().atMost(PATIENCE)
                    .until(() -> scrape(port), s -> !Double.isNaN(s.value(trainGpuTime[0], "pod", "train-0")));
            node.sim.run(Duration.ofSeconds(10), "omai-sim-ctl", "inject-xid", "1", "13");

            // the container's shim reports 2 s of GPU time and 100 launches
            forge(usage, total("tokens_consumed_ns"), 2_000_000_000L);
            forge(usage, total("launches"), 100);
            Thread.sleep(1_100);
            ExpositionText second = await().atMost(PATIENCE)
                    .until(
                            () -> scrape(port),
                            s -> s.families().containsKey("omai_gpu_xid_errors_total")
                                    && s.value(trainGpuTime[0], "pod", "train-0") > 0);
            assertThat(second.value(trainGpuTime[0], "pod", "train-0")).isEqualTo(2.0);
            assertThat(second.value("omai_allocation_kernel_launches_total", "pod", "train-0"))
                    .isEqualTo(100);

            // then forges them down: the counters stay, and count on from the new base
            forge(usage, total("tokens_consumed_ns"), 0);
            forge(usage, total("launches"), 0);
            ExpositionText third = scrape(port);
            forge(usage, total("tokens_consumed_ns"), 500_000_000L);
            Thread.sleep(600);
            ExpositionText fourth = scrape(port);
            assertThat(third.value(trainGpuTime[0], "pod", "train-0")).isEqualTo(2.0);
            assertThat(fourth.value(trainGpuTime[0], "pod", "train-0")).isEqualTo(2.5);

            // another container breaks its usage file's header: an audit finding
            forge(
                    node.allocationDir(infer.response().getEnvsMap().get("OMAI_ALLOCATION_ID"))
                            .resolve(AllocationFiles.USAGE),
                    0,
                    0xBADL);
            ExpositionText tampered = await().atMost(PATIENCE)
                    .until(() -> scrape(port), s -> s.families().containsKey("omai_audit_findings_total"));
            assertThat(tampered.value("omai_audit_findings_total", "finding", "usage_tampered", "pod", "infer-0"))
                    .isPositive();

            List<ExpositionText> scrapes = List.of(first, second, third, fourth, tampered);
            for (int i = 1; i < scrapes.size(); i++) {
                assertCountersDidNotDecrease(scrapes.get(i - 1), scrapes.get(i));
            }
            assertHoldsTheDocumentedContract(tampered);
            assertThat(Promtool.checkMetrics(raw(port)))
                    .as("promtool check metrics on the running agent's scrape")
                    .isEmpty();
            assertDashboardAndRulesSelectOnlyWhatIsScraped(tampered);
        }
    }

    private static void assertHoldsTheDocumentedContract(ExpositionText scrape) {
        List<String> problems = new ArrayList<>();
        Set<String> documented = new TreeSet<>();
        for (DocumentedFamilies.Family family : DocumentedFamilies.read()) {
            documented.add(family.name());
            ExpositionText.Family exported = scrape.families().get(family.name());
            if (exported == null) {
                if (family.always() || family.name().equals("omai_gpu_xid_errors_total")) {
                    problems.add(family.name() + " (present " + family.present() + ") is missing");
                }
                continue;
            }
            if (!exported.type().equals(family.type())) {
                problems.add(family.name() + " is a " + exported.type() + ", documented as " + family.type());
            }
            if (exported.help().isBlank()) {
                problems.add(family.name() + " has no HELP");
            }
            for (ExpositionText.Sample sample : exported.samples()) {
                Set<String> labels = new TreeSet<>(sample.labels().keySet());
                labels.remove("le");
                labels.remove("quantile");
                if (!labels.equals(new TreeSet<>(family.labels()))) {
                    problems.add(sample + " has labels " + labels + ", documented " + family.labels());
                }
                for (String required : List.of("uuid", "node")) {
                    if (family.labels().contains(required)
                            && sample.labels().getOrDefault(required, "").isEmpty()) {
                        problems.add(sample + " has an empty " + required);
                    }
                }
            }
        }
        Set<String> undocumented = new TreeSet<>(scrape.families().keySet());
        undocumented.removeAll(documented);
        if (!undocumented.isEmpty()) {
            problems.add("exported but not documented: " + undocumented);
        }
        assertThat(problems).as("the scrape against docs/operations.md").isEmpty();
    }

    private static void assertCountersDidNotDecrease(ExpositionText before, ExpositionText after) {
        for (ExpositionText.Family family : after.families().values()) {
            if (!family.type().equals("counter")) {
                continue;
            }
            ExpositionText.Family earlier = before.families().get(family.name());
            if (earlier == null) {
                continue;
            }
            for (ExpositionText.Sample sample : family.samples()) {
                for (ExpositionText.Sample old : earlier.samples()) {
                    if (old.labels().equals(sample.labels())) {
                        assertThat(sample.value())
                                .as(
                                        "%s went from %s to %s",
                                        sample.name() + sample.labels(), old.value(), sample.value())
                                .isGreaterThanOrEqualTo(old.value());
                    }
                }
            }
        }
    }

    private static void assertDashboardAndRulesSelectOnlyWhatIsScraped(ExpositionText scrape) throws IOException {
        Path root = DocumentedFamilies.repositoryRoot();
        Set<String> selected = new TreeSet<>();
        Matcher expr = Pattern.compile("\"(?:expr|definition)\":\\s*\"((?:[^\"\\\\]|\\\\.)*)\"")
                .matcher(java.nio.file.Files.readString(root.resolve("daemonset/grafana/omai-dashboard.json")));
        while (expr.find()) {
            selected.addAll(names(JSON.readValue("\"" + expr.group(1) + "\"", String.class)));
        }
        JsonNode rule =
                YAML.readTree(root.resolve("daemonset/prometheusrule.yaml").toFile());
        rule.path("spec")
                .path("groups")
                .forEach(g -> g.path("rules")
                        .forEach(r -> selected.addAll(names(r.path("expr").asText()))));
        assertThat(selected).as("families the dashboard and the rules select").hasSizeGreaterThan(30);
        Set<String> documented = new TreeSet<>();
        DocumentedFamilies.read().forEach(f -> documented.add(f.name()));
        Set<String> missing = new TreeSet<>();
        for (String name : selected) {
            String family = family(name, documented);
            if (!scrape.families().containsKey(family) && !NOT_ON_THIS_NODE.containsKey(family)) {
                missing.add(name);
            }
        }
        assertThat(missing)
                .as("selected by the dashboard or the rules but not in the scrape")
                .isEmpty();
    }

    /** Metric names in a PromQL expression: identifiers starting with the agent's, the JVM's or Prometheus' prefixes. */
    private static Set<String> names(String promQl) {
        Set<String> names = new TreeSet<>();
        String withoutMatchers = promQl.replaceAll("\\{[^}]*}", " ");
        Matcher name = Pattern.compile("\\b((?:omai|jvm|process|system)_[a-z0-9_]+|up)\\b")
                .matcher(withoutMatchers);
        while (name.find()) {
            names.add(name.group(1));
        }
        return names;
    }

    /** The documented family a selected series belongs to (a histogram's _bucket/_sum/_count included). */
    private static String family(String series, Set<String> documented) {
        for (String suffix : List.of("_bucket", "_sum", "_count")) {
            String base = series.substring(0, series.length() - (series.endsWith(suffix) ? suffix.length() : 0));
            if (series.endsWith(suffix) && documented.contains(base)) {
                return base;
            }
        }
        return series;
    }

    /** Where a container-wide total of device 0 lies in a usage file. */
    private static long total(String field) {
        return ShmLayout.USAGE_DEVICES_OFFSET + ShmLayout.offset(ShmLayout.USAGE_DEVICE, field);
    }

    /** Writes a 64-bit word of a usage file, as a hostile container can. */
    private static void forge(Path usageFile, long offset, long value) throws IOException {
        try (Arena arena = Arena.ofConfined();
                FileChannel channel = FileChannel.open(usageFile, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            MemorySegment usage = channel.map(FileChannel.MapMode.READ_WRITE, 0, channel.size(), arena);
            LONG.setVolatile(usage, offset, value);
        }
    }

    private String raw(int port) throws Exception {
        HttpResponse<String> response = http.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                        .GET()
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).isEqualTo(200);
        return response.body();
    }

    private ExpositionText scrape(int port) throws Exception {
        return new ExpositionText(raw(port));
    }
}
