package io.omai.harness.shim;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * omai-shm-tool makes allocation files without Java (the real-GPU check uses it): the agent's own reader must
 * accept what it writes, and its seqlocked limit update must look like the agent's.
 */
class ShmToolTest {
    private static final Duration T = Duration.ofSeconds(30);

    @TempDir
    Path tmp;

    private SimNode.Run tool(SimNode node, String... args) {
        return node.start(Map.of(), "omai-shm-tool", args).finish(T);
    }

    @Test
    void filesItCreatesAreWhatTheAgentReads() throws IOException {
        SimNode node = SimNode.create(tmp.resolve("sim"), 1, 1L << 30);
        Path dir = tmp.resolve("alloc");

        SimNode.Run created = tool(node, "create", dir.toString(), "GPU-aaaa=4GiB", "GPU-bbbb=unlimited");
        assertThat(created.exitCode()).as(created.stderr()).isZero();
        try (AllocationFiles files = AllocationFiles.openReadOnly(dir)) {
            ControlSnapshot c = files.control().read();
            assertThat(c.devices()).extracting(ControlSnapshot.Device::uuid).containsExactly("GPU-aaaa", "GPU-bbbb");
            assertThat(c.devices().get(0).memoryLimitBytes()).isEqualTo(4L << 30);
            assertThat(c.devices().get(1).memoryUnlimited()).isTrue();
            assertThat(c.devices().get(0).mode()).isEqualTo(ComputeMode.HARD_CAP);
            assertThat(files.usage().deviceCount()).isEqualTo(2);
            assertThat(files.usage().read().slots()).isEmpty();
        }

        SimNode.Run set = tool(node, "set-limit", dir.toString(), "0", "1GiB");
        assertThat(set.exitCode()).as(set.stderr()).isZero();
        try (AllocationFiles files = AllocationFiles.openReadOnly(dir)) {
            ControlSnapshot c = files.control().read();
            assertThat(c.devices().get(0).memoryLimitBytes()).isEqualTo(1L << 30);
            assertThat(c.epoch())
                    .as("one seqlocked update: odd while writing, even after")
                    .isEqualTo(2);
        }
        SimNode.Run shown = tool(node, "show", dir.toString());
        assertThat(shown.stdout()).contains("uuid=GPU-aaaa limit=1073741824").contains("uuid=GPU-bbbb limit=unlimited");
    }

    @Test
    void badInputIsNamedWithWhatWasExpected() {
        SimNode node = SimNode.create(tmp.resolve("sim"), 1, 1L << 30);

        SimNode.Run noLimit = tool(node, "create", tmp.resolve("a").toString(), "GPU-aaaa");
        SimNode.Run badLimit = tool(node, "create", tmp.resolve("b").toString(), "GPU-aaaa=lots");
        SimNode.Run noFiles = tool(node, "show", tmp.resolve("nowhere").toString());

        assertThat(noLimit.exitCode()).isEqualTo(2);
        assertThat(noLimit.stderr()).contains("'GPU-aaaa' is not UUID=LIMIT");
        assertThat(badLimit.exitCode()).isEqualTo(2);
        assertThat(badLimit.stderr()).contains("'GPU-aaaa=lots'").contains("4GiB");
        assertThat(noFiles.exitCode()).isEqualTo(1);
        assertThat(noFiles.stderr()).contains("nowhere/control").contains("No such file");
    }
}
