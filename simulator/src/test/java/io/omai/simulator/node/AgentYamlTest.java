package io.omai.simulator.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.simulator.sim.SimNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The one agent configuration of a simulated node, read back by the agent's own loader. */
class AgentYamlTest {
    @TempDir
    Path root;

    private SimulatedNodePaths paths() {
        return SimulatedNodePaths.under(root, SimNode.create(root.resolve("sim"), 1, 16L << 30));
    }

    @Test
    void theNodesPathsAndEachCallersSettingsReachTheAgent() throws Exception {
        SimulatedNodePaths paths = paths();
        String yaml = AgentYaml.forNode("contract-node", paths)
                .quickKubelet(Duration.ofMillis(100), Duration.ofMillis(600))
                .set("tenancy.audit", "\"off\"")
                .set("tenancy.auditInterval", Duration.ofMillis(250))
                .metrics(19090)
                .schedulerApi(19091)
                .set(
                        "schedulerApi.deviceLabels",
                        "\n    - select: all\n      attributes: {class: train}\n      tags: [simulated]")
                .text();

        AgentConfig config = ConfigLoader.parse("test", yaml);

        assertThat(config.nodeName()).isEqualTo("contract-node");
        assertThat(config.directories().devicePlugin()).isEqualTo(paths.devicePlugins());
        assertThat(config.directories().podResourcesSocket()).isEqualTo(paths.podResourcesSocket());
        assertThat(config.directories().state()).isEqualTo(paths.state());
        assertThat(config.shim().hostLibrary()).isEqualTo(paths.shimLibrary());
        assertThat(config.nvml().library()).isEqualTo(paths.nvmlLibrary().toString());
        assertThat(config.kubelet().registrationBackoffMax()).isEqualTo(Duration.ofSeconds(1));
        assertThat(config.kubelet().reconcileInterval()).isEqualTo(Duration.ofMillis(100));
        assertThat(config.kubelet().releaseGracePeriod()).isEqualTo(Duration.ofMillis(600));
        assertThat(config.tenancy().auditInterval()).isEqualTo(Duration.ofMillis(250));
        assertThat(config.metrics().port()).isEqualTo(19090);
        assertThat(config.schedulerApi().port()).isEqualTo(19091);
        assertThat(config.schedulerApi().deviceLabels())
                .singleElement()
                .satisfies(labels -> assertThat(labels.tags()).containsExactly("simulated"));
        assertThat(Files.isDirectory(paths.devicePlugins()))
                .as("kubelet's plugin directory exists")
                .isTrue();
    }

    @Test
    void schedulerApiOffReplacesWhatWasSetAndRawYamlComesLast() throws Exception {
        String yaml = AgentYaml.forNode("n", paths())
                .schedulerApi(19091)
                .schedulerApiOff()
                .appendRaw("kubelet:\n  reconcileInterval: 2s\n")
                .text();

        AgentConfig config = ConfigLoader.parse("test", yaml);

        assertThat(config.schedulerApi().enabled()).isFalse();
        assertThat(config.kubelet().reconcileInterval()).isEqualTo(Duration.ofSeconds(2));
        assertThat(yaml).endsWith("kubelet:\n  reconcileInterval: 2s\n");
    }

    @Test
    void aKeyWithoutExactlyOneDotIsRefusedNamingIt() {
        AgentYaml yaml = AgentYaml.forNode("n", paths());
        assertThatThrownBy(() -> yaml.set("metrics", 1))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'metrics'")
                .hasMessageContaining("section.key");
        assertThatThrownBy(() -> yaml.set("a.b.c", 1)).hasMessageContaining("'a.b.c'");
    }
}
