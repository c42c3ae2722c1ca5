package io.omai.extender;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.omai.extender.config.ScoringPolicy;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The YAML configuration: defaults, every key read, and a clear error for each kind of mistake. */
class ExtenderConfigFileTest {
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    private static KubernetesClient client;

    @BeforeAll
    static void client() {
        client = new KubernetesClientBuilder().build();
    }

    @AfterAll
    static void close() {
        client.close();
    }

    private static ExtenderSettings parse(String yaml) throws Exception {
        return ExtenderConfigFile.parse(YAML.readTree(yaml), client);
    }

    @Test
    void anEmptyConfigurationIsTheDefaults() throws Exception {
        ExtenderSettings settings = parse("{}");

        assertThat(settings.httpPort()).isEqualTo(8888);
        assertThat(settings.agents().namespace()).isEqualTo("omai-system");
        assertThat(settings.agents().service()).isEqualTo("omai-agent");
        assertThat(settings.agents().port()).isEqualTo(9401);
        assertThat(settings.agents().tokenFile()).isEmpty();
        assertThat(settings.scoring()).isEqualTo(ScoringPolicy.DEFAULT);
        assertThat(settings.tenantLabel()).isEqualTo("omai.io/tenant");
    }

    @Test
    void everyKeyIsRead() throws Exception {
        ExtenderSettings settings = parse("""
                http: {port: 9000}
                agents:
                  namespace: gpu
                  service: agents
                  port: 7443
                  tokenFile: /t/token
                  tls: {caFile: /t/ca.pem, certFile: /t/c.pem, keyFile: /t/k.pem}
                  fitDeadline: 150ms
                  reserveDeadline: 3s
                  leaseSeconds: 30
                  maxBackoff: 1m
                scoring: {strategy: spread, weights: {gpu: 1, node: 0, numa: 4}}
                tenantLabel: example.com/team
                parallelism: 3
                """);

        assertThat(settings.httpPort()).isEqualTo(9000);
        assertThat(settings.agents().namespace()).isEqualTo("gpu");
        assertThat(settings.agents().service()).isEqualTo("agents");
        assertThat(settings.agents().port()).isEqualTo(7443);
        assertThat(settings.agents().tokenFile()).contains(Path.of("/t/token"));
        assertThat(settings.agents().tls().orElseThrow().certFile()).contains(Path.of("/t/c.pem"));
        assertThat(settings.agents().fitDeadline()).isEqualTo(Duration.ofMillis(150));
        assertThat(settings.agents().reserveDeadline()).isEqualTo(Duration.ofSeconds(3));
        assertThat(settings.agents().leaseSeconds()).isEqualTo(30);
        assertThat(settings.agents().maxBackoff()).isEqualTo(Duration.ofMinutes(1));
        assertThat(settings.scoring()).isEqualTo(new ScoringPolicy(ScoringPolicy.Strategy.SPREAD, 1, 0, 4));
        assertThat(settings.tenantLabel()).isEqualTo("example.com/team");
        assertThat(settings.parallelism()).isEqualTo(3);
    }

    @Test
    void mistakesNameTheKeyAndWhatWasExpected() {
        assertThatThrownBy(() -> parse("agents: {prot: 1}"))
                .hasMessageStartingWith("unknown configuration key(s) [agents.prot]; expected agents.one of");
        assertThatThrownBy(() -> parse("agents: {fitDeadline: 3 seconds}"))
                .hasMessage("agents.fitDeadline is '\"3 seconds\"'; expected a duration such as 300ms, 2s or 1m");
        assertThatThrownBy(() -> parse("http: {port: eighty}"))
                .hasMessage("http.port is '\"eighty\"'; expected a whole number");
        assertThatThrownBy(() -> parse("http: {port: 70000}")).hasMessage("HTTP port 70000 is outside 0..65535");
        assertThatThrownBy(() -> parse("scoring: {strategy: pack}"))
                .hasMessage("scoring strategy 'pack' is not one of binpack, spread");
        assertThatThrownBy(() -> parse("scoring: {weights: {gpu: 0, node: 0, numa: 0}}"))
                .hasMessageContaining("must not be negative and must not all be 0");
        assertThatThrownBy(() -> parse("agents: {tls: {certFile: /c.pem}}"))
                .hasMessage("agents.tls.caFile is missing; expected the PEM CA of the agents");
        assertThatThrownBy(() -> parse("agents: {leaseSeconds: 0}")).hasMessage("lease 0 s is outside 1..3600 s");
    }
}
