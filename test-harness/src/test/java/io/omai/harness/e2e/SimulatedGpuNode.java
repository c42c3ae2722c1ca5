package io.omai.harness.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.omai.harness.kubelet.KubeletSimulator;
import io.omai.harness.launcher.AgentJvm;
import io.omai.harness.launcher.AgentYaml;
import io.omai.harness.sim.SimNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * One simulated node for end-to-end tests: simulated GPUs ({@link SimNode}), a kubelet simulator, and the
 * agent as a separate JVM configured to use them, all under one temporary directory.
 */
final class SimulatedGpuNode implements AutoCloseable {
    static final String RESOURCE = "omai.io/milli-gpu";
    static final long GPU_MEMORY = 16L << 30;

    final Path root;
    final SimNode sim;
    KubeletSimulator kubelet;
    private final Path devicePlugins;
    private final Path podResources;
    final Path config;
    final Path stateDir;
    private final List<AgentJvm> agents = new ArrayList<>();
    private int starts;

    SimulatedGpuNode(Path root, int gpus) throws IOException {
        this(root, gpus, true);
    }

    /** @param startKubelet false to start the kubelet later ({@link #startKubelet}) */
    SimulatedGpuNode(Path root, int gpus, boolean startKubelet) throws IOException {
        this.root = root;
        this.sim = SimNode.create(root.resolve("sim"), gpus, GPU_MEMORY);
        this.stateDir = root.resolve("state");
        this.devicePlugins = root.resolve("device-plugins");
        this.podResources = root.resolve("pod-resources/kubelet.sock");
        Files.createDirectories(devicePlugins);
        this.config = root.resolve("agent.yaml");
        AgentYaml.simulatedNode("sim-node", devicePlugins, podResources, stateDir, sim.buildDir())
                .set("nvml", "recoveryDebounce", "1s")
                .set("kubelet", "registrationBackoffMax", "1s")
                .set("kubelet", "reconcileInterval", "300ms")
                .set("kubelet", "releaseGracePeriod", "2s")
                .set("tenancy", "auditInterval", "300ms")
                .metricsOnFreePort()
                .schedulerApiOn(AgentYaml.freeLoopbackPort())
                .write(config);
        if (startKubelet) {
            startKubelet();
        }
    }

    KubeletSimulator startKubelet() {
        kubelet = KubeletSimulator.start(devicePlugins, podResources);
        return kubelet;
    }

    /** Starts the agent JVM and waits until kubelet has its registration and device list. */
    AgentJvm startAgent() {
        AgentJvm agent = AgentJvm.start(config, sim.env(), root.resolve("agent-" + (++starts) + ".log"), AgentJvm.QUICK_START);
        agents.add(agent);
        agent.awaitLog("event=agent_started", Duration.ofSeconds(60));
        return agent;
    }

    /** The ledger checkpoint's allocations, as stored. */
    JsonNode checkpointAllocations() throws IOException {
        return new ObjectMapper().readTree(stateDir.resolve("ledger.json").toFile()).get("allocations");
    }

    Path allocationDir(String allocationId) {
        return stateDir.resolve("allocations").resolve(allocationId);
    }

    @Override
    public void close() throws Exception {
        for (AgentJvm agent : agents) {
            agent.close();
        }
        if (kubelet != null) {
            kubelet.close();
        }
    }
}
