package io.omai.harness.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * One simulated node for end-to-end tests ({@link SimulatedAgentNode}: simulated GPUs, a kubelet simulator, the
 * agent as a separate JVM) with quick kubelet timings, the audit every 300 ms and metrics and scheduler API on.
 */
final class SimulatedGpuNode implements AutoCloseable {
    static final String RESOURCE = "omai.io/milli-gpu";
    static final long GPU_MEMORY = 16L << 30;

    final Path root;
    final SimNode sim;
    KubeletSimulator kubelet;
    final Path config;
    final Path stateDir;
    private final SimulatedAgentNode node;

    SimulatedGpuNode(Path root, int gpus) throws IOException {
        this(root, gpus, true);
    }

    /** @param startKubelet false to start the kubelet later ({@link #startKubelet}) */
    SimulatedGpuNode(Path root, int gpus, boolean startKubelet) throws IOException {
        this.root = root;
        this.node = SimulatedAgentNode.create(root, gpus, GPU_MEMORY);
        this.sim = node.sim();
        this.stateDir = node.paths().state();
        this.config = node.yaml("sim-node")
                .set("nvml.recoveryDebounce", "1s")
                .quickKubelet(Duration.ofMillis(300), Duration.ofSeconds(2))
                .set("tenancy.auditInterval", "300ms")
                .metrics(freePort())
                .schedulerApi(freePort())
                .writeTo(root.resolve("agent.yaml"));
        if (startKubelet) {
            startKubelet();
        }
    }

    KubeletSimulator startKubelet() {
        kubelet = node.startKubelet();
        return kubelet;
    }

    /** A TCP port nobody listens on now, for the agent's metrics server (several agents may run at once). */
    static int freePort() {
        return SimulatedAgentNode.freePort();
    }

    /** Starts the agent JVM and waits until it serves its plugin socket. */
    AgentJvm startAgent() {
        return node.startServing(config, AgentJvm.QUICK_START, SimulatedAgentNode.START_TIMEOUT);
    }

    /** The ledger checkpoint's allocations, as stored. */
    JsonNode checkpointAllocations() throws IOException {
        Path file = stateDir.resolve("ledger.json");
        if (!Files.exists(file)) {
            return new ObjectMapper().createArrayNode(); // written on the ledger's writer thread after a change
        }
        return new ObjectMapper().readTree(file.toFile()).get("allocations");
    }

    Path allocationDir(String allocationId) {
        return stateDir.resolve("allocations").resolve(allocationId);
    }

    @Override
    public void close() {
        node.close();
    }
}
