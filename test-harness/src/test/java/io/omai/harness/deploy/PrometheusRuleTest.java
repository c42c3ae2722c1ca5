package io.omai.harness.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.omai.agent.metrics.contract.DocumentedFamilies;
import io.omai.agent.metrics.contract.Promtool;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * daemonset/prometheusrule.yaml: its rule groups pass {@code promtool check rules}, every alert fires (and only
 * then) as {@code monitoring/alerts-test.yaml} says under {@code promtool test rules}, every expression selects only
 * families the agent documents (plus Prometheus' own {@code up}), and every alert has its troubleshooting in
 * docs/operations.md.
 */
class PrometheusRuleTest {
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    private static final Path ROOT = DocumentedFamilies.repositoryRoot();

    @TempDir
    Path dir;

    @Test
    void theRuleGroupsPassPromtoolCheckRules() throws IOException {
        Path rules = extractRules();
        Promtool.Result check = Promtool.run("", "check", "rules", rules.toString());
        assertThat(check.exitCode())
                .as("promtool check rules said:\n%s", check.output())
                .isZero();
        assertThat(check.output()).contains("SUCCESS: " + alerts().size() + " rules found");
    }

    @Test
    void everyAlertFiresAsItsUnitTestSays() throws IOException {
        extractRules();
        Path tests = dir.resolve("alerts-test.yaml");
        try (InputStream in = getClass().getResourceAsStream("/monitoring/alerts-test.yaml")) {
            assertThat(in)
                    .as("monitoring/alerts-test.yaml on the test class path")
                    .isNotNull();
            Files.write(tests, in.readAllBytes());
        }
        Promtool.Result test = Promtool.run("", "test", "rules", tests.toString());
        assertThat(test.exitCode())
                .as("promtool test rules said:\n%s", test.output())
                .isZero();

        Set<String> tested = new TreeSet<>();
        YAML.readTree(tests.toFile())
                .path("tests")
                .forEach(t -> t.path("alert_rule_test")
                        .forEach(a -> tested.add(a.path("alertname").asText())));
        assertThat(tested).as("alerts with a unit test").containsExactlyInAnyOrderElementsOf(alertNames());
    }

    @Test
    void alertsSelectOnlyDocumentedFamiliesAndEachHasItsTroubleshooting() throws IOException {
        Set<String> documented = new TreeSet<>(ManifestsTest.METRICS);
        documented.add("up");
        String operations = Files.readString(ROOT.resolve("docs/operations.md"));
        List<String> problems = new ArrayList<>();
        for (JsonNode rule : alerts()) {
            String alert = rule.path("alert").asText();
            for (String metric : PromQlNames.metrics(rule.path("expr").asText())) {
                if (!documented.contains(metric)) {
                    problems.add(alert + " selects " + metric + ", which docs/operations.md does not document");
                }
            }
            if (!operations.contains("\n### " + alert + "\n")) {
                problems.add(alert + " has no '### " + alert + "' troubleshooting section in docs/operations.md");
            }
            if (!rule.path("annotations").path("description").asText().contains("docs/operations.md")) {
                problems.add(alert + "'s description does not point at docs/operations.md");
            }
        }
        assertThat(problems).isEmpty();
    }

    /** The groups of the PrometheusRule, as a Prometheus rule file in {@link #dir}. */
    private Path extractRules() throws IOException {
        ObjectNode file = YAML.createObjectNode();
        file.set("groups", rule().path("spec").path("groups"));
        Path rules = dir.resolve("rules.yaml");
        YAML.writeValue(rules.toFile(), file);
        return rules;
    }

    private static JsonNode rule() throws IOException {
        return YAML.readTree(ROOT.resolve("daemonset/prometheusrule.yaml").toFile());
    }

    private static List<JsonNode> alerts() throws IOException {
        List<JsonNode> alerts = new ArrayList<>();
        rule().path("spec").path("groups").forEach(g -> g.path("rules").forEach(alerts::add));
        return alerts;
    }

    private static List<String> alertNames() throws IOException {
        return alerts().stream().map(r -> r.path("alert").asText()).toList();
    }
}
