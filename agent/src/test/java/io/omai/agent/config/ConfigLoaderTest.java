package io.omai.agent.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ConfigLoaderTest {
    @TempDir
    Path dir;

    @Test
    void aFileWithOnlyTheVersionGivesTheDocumentedDefaults() throws ConfigException {
        AgentConfig config = ConfigLoader.parse("agent.yaml", "version: 1\nnodeName: node-a\n");
        assertThat(config.nodeName()).isEqualTo("node-a");
        assertThat(config.resources().milliGpu()).isEqualTo("omai.io/milli-gpu");
        assertThat(config.directories().devicePlugin()).isEqualTo(Path.of("/var/lib/kubelet/device-plugins"));
        assertThat(config.directories().podResourcesSocket())
                .isEqualTo(Path.of("/var/lib/kubelet/pod-resources/kubelet.sock"));
        assertThat(config.directories().state()).isEqualTo(Path.of("/var/lib/omai"));
        assertThat(config.directories().devRoot()).isEqualTo(Path.of("/dev"));
        assertThat(config.sharing())
                .isEqualTo(new AgentConfig.Sharing(
                        AgentConfig.MemoryPolicy.PROPORTIONAL,
                        AgentConfig.ComputePolicy.HARD_CAP,
                        true,
                        100_000,
                        false,
                        "nvidia.com/gpu"));
        assertThat(config.shim())
                .isEqualTo(new AgentConfig.Shim(
                        Path.of("/usr/local/omai/lib/libomai-shim.so"),
                        Path.of("/usr/local/omai/lib/libomai-shim.so"),
                        true));
        assertThat(config.nvml().library()).isEqualTo("libnvidia-ml.so.1");
        assertThat(config.nvml().recoveryDebounce()).isEqualTo(Duration.ofSeconds(30));
        assertThat(config.nvml().ignoredXids()).containsExactlyInAnyOrder(13L, 31L, 43L, 45L, 68L, 109L);
        assertThat(config.kubelet())
                .isEqualTo(
                        new AgentConfig.Kubelet(Duration.ofSeconds(5), Duration.ofSeconds(30), Duration.ofSeconds(60)));
        assertThat(config.pluginSocketName()).isEqualTo("omai-io-milli-gpu.sock");
    }

    @Test
    void everyKeyIsRead() throws Exception {
        Path file = dir.resolve("agent.yaml");
        Files.writeString(file, """
                version: 1
                nodeName: gpu-node-7
                resources:
                  milliGpu: example.com/milligpu
                directories:
                  devicePlugin: /tmp/dp
                  podResourcesSocket: /tmp/pr/kubelet.sock
                  state: /tmp/state
                  devRoot: /tmp/dev
                sharing:
                  memoryPolicy: unlimited
                  computeMode: work-conserving
                  computeEnforced: false
                  computePeriod: 50ms
                  cdi:
                    enabled: true
                    kind: nvidia.com/gpu
                shim:
                  hostLibrary: /opt/omai/libomai-shim.so
                  containerLibrary: /usr/lib/omai/libomai-shim.so
                  preloadFileMount: false
                nvml:
                  library: /opt/sim/libnvidia-ml.so.1
                  healthChecks: false
                  recoveryDebounce: 2m
                  ignoredXids: [13, 43]
                kubelet:
                  registrationBackoffMax: 2s
                  reconcileInterval: 500ms
                  releaseGracePeriod: 0s
                """);
        AgentConfig config = ConfigLoader.load(file);
        assertThat(config.nodeName()).isEqualTo("gpu-node-7");
        assertThat(config.resources().milliGpu()).isEqualTo("example.com/milligpu");
        assertThat(config.directories())
                .isEqualTo(new AgentConfig.Directories(
                        Path.of("/tmp/dp"),
                        Path.of("/tmp/pr/kubelet.sock"),
                        Path.of("/tmp/state"),
                        Path.of("/tmp/dev")));
        assertThat(config.sharing())
                .isEqualTo(new AgentConfig.Sharing(
                        AgentConfig.MemoryPolicy.UNLIMITED,
                        AgentConfig.ComputePolicy.WORK_CONSERVING,
                        false,
                        50_000,
                        true,
                        "nvidia.com/gpu"));
        assertThat(config.shim().preloadFileMount()).isFalse();
        assertThat(config.nvml())
                .isEqualTo(new AgentConfig.Nvml(
                        "/opt/sim/libnvidia-ml.so.1", false, Duration.ofMinutes(2), Set.of(13L, 43L)));
        assertThat(config.kubelet())
                .isEqualTo(new AgentConfig.Kubelet(Duration.ofSeconds(2), Duration.ofMillis(500), Duration.ZERO));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            version: 2                                    | version: '2' is not supported; expected 1
            nodeName: x                                   | version: is missing
            version: 1\\nsharing: {memoryPolicy: half}     | sharing.memoryPolicy: 'half' is unknown; expected proportional or unlimited
            version: 1\\nsharing: {computeMode: fair}      | sharing.computeMode: 'fair' is unknown; expected hard-cap or work-conserving
            version: 1\\nsharing: {computePeriod: 20s}     | sharing.computePeriod: '20s' is above 10s; expected 1ms..10s
            version: 1\\nsharing: {computePeriod: fast}    | sharing.computePeriod: 'fast' is not a duration
            version: 1\\nsharing: {computeEnforced: yes please} | sharing.computeEnforced: is 'yes please' (a string); expected true or false
            version: 1\\nsharing: {cdi: {kind: gpu}}       | sharing.cdi.kind: 'gpu' is not a CDI kind; expected vendor.com/class
            version: 1\\nsharng: {}                        | sharng: is not a known key; expected one of version, nodeName
            version: 1\\nnvml: {libary: x}                 | nvml.libary: is not a known key; expected one of library, healthChecks
            version: 1\\ndirectories: {state: var/omai}    | directories.state: 'var/omai' is not an absolute path
            version: 1\\ndirectories: [a]                  | directories: is a list; expected a mapping
            version: 1\\nresources: {milliGpu: gpu}        | resources.milliGpu: 'gpu' is not an extended resource name
            version: 1\\nresources: {milliGpu: nvidia.com/gpu} | resources.milliGpu: 'nvidia.com/gpu' would hijack NVIDIA's device plugin
            version: 1\\nnvml: {ignoredXids: [13, x]}      | nvml.ignoredXids: has [x]; expected whole numbers 0..4294967295
            version: 1\\nkubelet: {reconcileInterval: 1ms} | kubelet.reconcileInterval: '1ms' is below 100ms
            version: 1\\nnodeName: Node_A                  | nodeName: 'Node_A' is not a node name
            'version: [1'                                 | is not valid YAML
            """)
    void badValuesAreRefusedNamingKeyValueAndExpectation(String yaml, String message) {
        assertThatThrownBy(() -> ConfigLoader.parse("agent.yaml", yaml.replace("\\n", "\n")))
                .isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("agent.yaml: ")
                .hasMessageContaining(message);
    }

    @Test
    void aMissingFileIsRefusedNamingIt() {
        Path missing = dir.resolve("nope.yaml");
        assertThatThrownBy(() -> ConfigLoader.load(missing))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(missing + ": cannot be read");
    }

    @Test
    void commandLineDirectoriesOverrideTheFile() throws ConfigException {
        AgentConfig config = ConfigLoader.withDirectories(
                ConfigLoader.parse("x", "version: 1"), Path.of("/a/dp"), null, Path.of("/a/state"));
        assertThat(config.directories().devicePlugin()).isEqualTo(Path.of("/a/dp"));
        assertThat(config.directories().podResourcesSocket()).isEqualTo(ConfigLoader.DEFAULT_POD_RESOURCES_SOCKET);
        assertThat(config.directories().state()).isEqualTo(Path.of("/a/state"));
    }

    @Test
    void aTamperedUsageFileFreezesByDefaultAndTheOldAuditKeyStillWorks() throws ConfigException {
        assertThat(ConfigLoader.parse("x", "version: 1").audit().onTamper()).isEqualTo(AgentConfig.TamperAction.FREEZE);
        AgentConfig config = ConfigLoader.parse("x", "version: 1\naudit: {onTamper: kill}\ntenancy: {audit: report}");
        assertThat(config.audit().onTamper()).isEqualTo(AgentConfig.TamperAction.KILL);
        assertThat(config.tenancy().audit()).isEqualTo(AgentConfig.AuditAction.REPORT);
    }
}
