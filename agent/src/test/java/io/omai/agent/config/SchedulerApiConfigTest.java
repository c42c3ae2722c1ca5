package io.omai.agent.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SchedulerApiConfigTest {
    private static AgentConfig parse(String section) throws ConfigException {
        return ConfigLoader.parse("test", "version: 1\nschedulerApi:\n" + section);
    }

    @Test
    void defaultsServePlaintextOnPort9401() throws ConfigException {
        AgentConfig.SchedulerApi api =
                ConfigLoader.parse("test", "version: 1\n").schedulerApi();
        assertThat(api.enabled()).isTrue();
        assertThat(api.address()).isEqualTo("0.0.0.0");
        assertThat(api.port()).isEqualTo(9401);
        assertThat(api.tls()).isNull();
        assertThat(api.allowedClients()).isEmpty();
        assertThat(api.deviceLabels()).isEmpty();
    }

    @Test
    void mutualTlsWithAnAllowListAndDeviceLabels() throws ConfigException {
        AgentConfig.SchedulerApi api = parse("""
                  port: 19401
                  tls: {certificateChain: /etc/omai/tls/tls.crt, privateKey: /etc/omai/tls/tls.key, clientCa: /etc/omai/tls/ca.crt}
                  allowedClients: [omai-scheduler, "spiffe://cluster/ns/kube-system/sa/sched"]
                  deviceLabels:
                    - select: {model: "NVIDIA H100 80GB HBM3"}
                      attributes: {class: train, nvlink: true}
                      tags: [fast]
                    - select: all
                      tags: [shared]
                    - select: {index: 3}
                      attributes: {class: infer}
                """).schedulerApi();
        assertThat(api.port()).isEqualTo(19401);
        assertThat(api.tls())
                .isEqualTo(new AgentConfig.Tls(
                        Path.of("/etc/omai/tls/tls.crt"),
                        Path.of("/etc/omai/tls/tls.key"),
                        Path.of("/etc/omai/tls/ca.crt")));
        assertThat(api.allowedClients())
                .containsExactlyInAnyOrder("omai-scheduler", "spiffe://cluster/ns/kube-system/sa/sched");
        assertThat(api.deviceLabels())
                .containsExactly(
                        new AgentConfig.DeviceLabels(
                                "model",
                                "NVIDIA H100 80GB HBM3",
                                Map.of("class", "train", "nvlink", "true"),
                                Set.of("fast")),
                        new AgentConfig.DeviceLabels("all", "", Map.of(), Set.of("shared")),
                        new AgentConfig.DeviceLabels("index", "3", Map.of("class", "infer"), Set.of()));
    }

    @Test
    void badValuesNameTheKeyTheValueAndWhatWasExpected() {
        assertThatThrownBy(() -> parse("  port: 70000\n"))
                .hasMessageContaining("schedulerApi.port")
                .hasMessageContaining("'70000' is not a TCP port");
        assertThatThrownBy(() -> parse("  address: sched.local\n"))
                .hasMessageContaining("schedulerApi.address")
                .hasMessageContaining("not an IP address");
        assertThatThrownBy(() -> parse("  tls: {certificateChain: /a.crt}\n"))
                .hasMessageContaining("schedulerApi.tls")
                .hasMessageContaining("expected all three of certificateChain, privateKey and clientCa");
        assertThatThrownBy(() -> parse("  allowedClients: [omai-scheduler]\n"))
                .hasMessageContaining("schedulerApi.allowedClients")
                .hasMessageContaining("mutual TLS is required");
        assertThatThrownBy(() -> parse("  tls: {certificateChain: /a.crt, privateKey: /a.key, clientCa: /ca.crt}\n"))
                .hasMessageContaining("schedulerApi.allowedClients")
                .hasMessageContaining("is empty");
        assertThatThrownBy(() -> parse("  deviceLabels:\n    - select: {vendor: nvidia}\n"))
                .hasMessageContaining("schedulerApi.deviceLabels[0].select")
                .hasMessageContaining("expected model, uuid, index or all");
        assertThatThrownBy(() -> parse("  deviceLabels:\n    - select: {index: -1}\n"))
                .hasMessageContaining("schedulerApi.deviceLabels[0].select.index");
        assertThatThrownBy(() -> parse("  deviceLabels:\n    - select: all\n      colour: red\n"))
                .hasMessageContaining("colour")
                .hasMessageContaining("not a known key");
        assertThatThrownBy(() -> parse("  enabeld: false\n"))
                .hasMessageContaining("enabeld")
                .hasMessageContaining("not a known key");
    }
}
