package io.omai.agent.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigException;
import io.omai.agent.config.ConfigLoader;
import org.junit.jupiter.api.Test;

/** The {@code metrics:} section of the agent's configuration. */
class MetricsConfigTest {
    @Test
    void defaultsListenOnEveryInterfaceOnPort9400() {
        assertThat(ConfigLoader.defaults().metrics()).isEqualTo(new AgentConfig.Metrics("0.0.0.0", 9400));
    }

    @Test
    void anAddressAndPortAreRead() throws ConfigException {
        assertThat(parse("metrics: {address: '::', port: 19400}").metrics())
                .isEqualTo(new AgentConfig.Metrics("::", 19400));
        assertThat(parse("metrics: {address: 127.0.0.1}").metrics().port()).isEqualTo(9400);
    }

    @Test
    void aBadPortIsRefusedWithTheKeyTheValueAndTheRange() {
        for (String port : new String[] {"0", "65536", "-1", "'9400'", "94.5"}) {
            assertThatThrownBy(() -> parse("metrics: {port: " + port + "}"))
                    .as(port)
                    .isInstanceOf(ConfigException.class)
                    .hasMessageContaining("metrics.port")
                    .hasMessageContaining("1..65535");
        }
    }

    @Test
    void aHostNameOrGarbageIsNotAnAddress() {
        for (String address : new String[] {"localhost", "300.1.1.1", "''"}) {
            assertThatThrownBy(() -> parse("metrics: {address: " + address + "}"))
                    .as(address)
                    .isInstanceOf(ConfigException.class)
                    .hasMessageContaining("metrics.address")
                    .hasMessageContaining("is not an IP address");
        }
    }

    @Test
    void anUnknownKeyIsRefused() {
        assertThatThrownBy(() -> parse("metrics: {prot: 9400}"))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("metrics.prot")
                .hasMessageContaining("address, port");
    }

    private static AgentConfig parse(String section) throws ConfigException {
        return ConfigLoader.parse("test", "version: 1\n" + section + "\n");
    }
}
