package io.omai.agent.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class DraConfigTest {
    private static AgentConfig.Dra parse(String section) throws ConfigException {
        return ConfigLoader.parse("agent.yaml", "version: 1\ndra:\n" + section.indent(2))
                .dra();
    }

    @Test
    void offByDefaultWithKubeletsDirectories() {
        AgentConfig.Dra dra = ConfigLoader.defaults().dra();
        assertThat(dra.enabled()).isFalse();
        assertThat(dra.driverName()).isEqualTo("gpu.omai.io");
        assertThat(dra.pluginsRegistryDir()).isEqualTo(Path.of("/var/lib/kubelet/plugins_registry"));
        assertThat(dra.pluginDir()).isEqualTo(Path.of("/var/lib/kubelet/plugins/gpu.omai.io"));
        assertThat(dra.cdiDir()).isEqualTo(Path.of("/var/run/cdi"));
        assertThat(dra.deviceClass()).isEqualTo("omai-gpu");
        assertThat(dra.memoryMinimum()).isEqualTo(256L << 20);
        assertThat(dra.memoryStep()).isEqualTo(1L << 20);
        assertThat(dra.registrationSocketName()).isEqualTo("gpu.omai.io-reg.sock");
        assertThat(dra.serviceSocket()).isEqualTo(Path.of("/var/lib/kubelet/plugins/gpu.omai.io/dra.sock"));
    }

    @Test
    void everyKeyIsRead() throws Exception {
        AgentConfig.Dra dra = parse("""
                enabled: true
                driverName: gpu.example.com
                pluginsRegistryDir: /k/plugins_registry
                pluginDir: /k/plugins/gpu.example.com
                cdiDir: /run/cdi
                deviceClass: a100-shared
                memoryMinimum: 1Gi
                memoryStep: 64Mi
                sliceUpdateDebounce: 2s""");
        assertThat(dra.enabled()).isTrue();
        assertThat(dra.driverName()).isEqualTo("gpu.example.com");
        assertThat(dra.pluginsRegistryDir()).isEqualTo(Path.of("/k/plugins_registry"));
        assertThat(dra.pluginDir()).isEqualTo(Path.of("/k/plugins/gpu.example.com"));
        assertThat(dra.cdiDir()).isEqualTo(Path.of("/run/cdi"));
        assertThat(dra.deviceClass()).isEqualTo("a100-shared");
        assertThat(dra.memoryMinimum()).isEqualTo(1L << 30);
        assertThat(dra.memoryStep()).isEqualTo(64L << 20);
        assertThat(dra.sliceUpdateDebounce()).isEqualTo(Duration.ofSeconds(2));
    }

    @Test
    void thePluginDirectoryFollowsTheDriverName() throws Exception {
        assertThat(parse("driverName: gpu.example.com").pluginDir())
                .isEqualTo(Path.of("/var/lib/kubelet/plugins/gpu.example.com"));
    }

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "driverName: gpu|dra.driverName: 'gpu' is not a DRA driver name",
                "driverName: GPU.omai.io|dra.driverName: 'GPU.omai.io' is not a DRA driver name",
                "deviceClass: 'a b'|dra.deviceClass: 'a b' is not a device attribute value",
                "cdiDir: run/cdi|dra.cdiDir: 'run/cdi' is not an absolute path",
                "memoryStep: 0|dra.memoryStep: '0' is outside",
                "memoryMinimum: 1Ki|dra.memoryMinimum: '1Ki' is outside",
                "memoryMinimum: 1000Mi\\nmemoryStep: 3Mi|dra.memoryMinimum: 1048576000 bytes is not a multiple",
                "memoryStep: lots|dra.memoryStep: 'lots' is not a byte size",
                "enabled: yes please|dra.enabled: is 'yes please' (a string); expected true or false",
                "socket: /x|dra.socket: is not a known key",
            })
    void badValuesAreRefusedNamingTheKey(String yaml, String message) {
        assertThatThrownBy(() -> parse(yaml.replace("\\n", "\n")))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(message);
    }
}
