package io.omai.agent.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TenancyConfigTest {
    private static AgentConfig.Tenancy parse(String section) throws ConfigException {
        return ConfigLoader.parse("agent.yaml", "version: 1\ntenancy:\n" + section.indent(2))
                .tenancy();
    }

    @Test
    void defaults() {
        AgentConfig.Tenancy tenancy = ConfigLoader.defaults().tenancy();
        assertThat(tenancy.policy()).isEqualTo(AgentConfig.AntiAffinity.GPU);
        assertThat(tenancy.tenantLabel()).isEqualTo("omai.io/tenant");
        assertThat(tenancy.kubernetesApi()).isEqualTo(AgentConfig.KubernetesApi.AUTO);
        assertThat(tenancy.identifyWait()).isEqualTo(Duration.ofSeconds(2));
        assertThat(tenancy.gpus()).isEmpty();
        assertThat(tenancy.otherGpuResource()).isEqualTo("nvidia.com/gpu");
        assertThat(tenancy.audit()).isEqualTo(AgentConfig.AuditAction.REPORT);
        assertThat(tenancy.auditInterval()).isEqualTo(Duration.ofSeconds(5));
    }

    @Test
    void everyKeyIsRead() throws Exception {
        AgentConfig.Tenancy tenancy = parse("""
                  policy: node
                  tenantLabel: example.com/team
                  kubernetesApi: off
                  identifyWait: 500ms
                  gpus: [0, GPU-8f6c2b1e-0000-4000-8000-000000000001]
                  otherGpuResource: nvidia.com/mig-1g.10gb
                  audit: kill
                  auditInterval: 1s""");
        assertThat(tenancy.policy()).isEqualTo(AgentConfig.AntiAffinity.NODE);
        assertThat(tenancy.tenantLabel()).isEqualTo("example.com/team");
        assertThat(tenancy.kubernetesApi()).isEqualTo(AgentConfig.KubernetesApi.OFF);
        assertThat(tenancy.identifyWait()).isEqualTo(Duration.ofMillis(500));
        assertThat(tenancy.gpus()).isEqualTo(List.of("0", "GPU-8f6c2b1e-0000-4000-8000-000000000001"));
        assertThat(tenancy.otherGpuResource()).isEqualTo("nvidia.com/mig-1g.10gb");
        assertThat(tenancy.audit()).isEqualTo(AgentConfig.AuditAction.KILL);
    }

    @Test
    void anUnquotedOffSwitchesTheAuditOffAsTheReferenceSays() throws ConfigException {
        // YAML 1.1 reads `off` as false; refusing it made the documented value unusable without quotes
        assertThat(parse("audit: off").audit()).isEqualTo(AgentConfig.AuditAction.OFF);
        assertThatThrownBy(() -> parse("audit: on"))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("tenancy.audit: is 'true' (boolean); expected a string");
    }

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "policy: gpus|tenancy.policy: 'gpus' is unknown; expected gpu",
                "tenantLabel: 'a b'|tenancy.tenantLabel: 'a b' is not a Kubernetes label key",
                "kubernetesApi: maybe|tenancy.kubernetesApi: 'maybe' is unknown; expected auto",
                "identifyWait: 10s|tenancy.identifyWait: '10s' is above 5s",
                "identifyWait: soon|tenancy.identifyWait: 'soon' is not a duration",
                "gpus: 0|tenancy.gpus: is '0' (number); expected a list of GPU UUIDs or indices",
                "gpus: [gpu0]|tenancy.gpus: has 'gpu0' (a string); expected GPU UUIDs (GPU-...) or NVML indices",
                "gpus: [1, 1]|tenancy.gpus: names a GPU twice: [1, 1]",
                "otherGpuResource: omai.io/milli-gpu|tenancy.otherGpuResource: 'omai.io/milli-gpu' is not another plugin's",
                "audit: shout|tenancy.audit: 'shout' is unknown; expected report",
                "auditInterval: 10ms|tenancy.auditInterval: '10ms' is below 100ms",
                "colour: blue|tenancy.colour: is not a known key; expected one of policy, tenantLabel",
            })
    void everyBadValueIsRefusedNamingKeyValueAndExpectation(String line, String message) {
        assertThatThrownBy(() -> parse(line))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(message);
    }
}
