package io.omai.simulator.node;

import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A simulated node with the agent as its own JVM: simulated GPUs ({@link SimNode}), the kubelet simulator and
 * agents started from an {@link AgentYaml}, all under one root. The one boot sequence of the end-to-end and
 * contract tests: {@link #launch} (nothing awaited), {@link #startServing} (the plugin socket is served),
 * {@link #boot} (kubelet has the registration and the node's full device list). Closing stops the agents, then
 * the kubelet.
 */
public final class SimulatedAgentNode implements AutoCloseable {
    public static final String RESOURCE = "omai.io/milli-gpu";
    /** How long an agent JVM may take to start on a loaded 2-core machine. */
    public static final Duration START_TIMEOUT = Duration.ofSeconds(60);

    private final SimNode sim;
    private final SimulatedNodePaths paths;
    private final List<AgentJvm> agents = new ArrayList<>();
    private KubeletSimulator kubelet;

    private SimulatedAgentNode(Path root, SimNode sim) {
        this.sim = sim;
        this.paths = SimulatedNodePaths.under(root, sim);
    }

    /** {@code gpus} H100-like simulated GPUs of {@code gpuMemory} bytes under {@code root}; no kubelet yet. */
    public static SimulatedAgentNode create(Path root, int gpus, long gpuMemory) {
        return new SimulatedAgentNode(root, SimNode.create(root.resolve("sim"), gpus, gpuMemory));
    }

    public SimNode sim() {
        return sim;
    }

    public SimulatedNodePaths paths() {
        return paths;
    }

    public Path root() {
        return paths.root();
    }

    /** A configuration of this node's directories, shim and NVML, for the caller to add its settings to. */
    public AgentYaml yaml(String nodeName) {
        return AgentYaml.forNode(nodeName, paths);
    }

    /** Starts the kubelet simulator on this node's sockets. */
    public KubeletSimulator startKubelet() {
        if (kubelet != null) {
            throw new IllegalStateException("the kubelet simulator of " + paths.root() + " is already running");
        }
        kubelet = KubeletSimulator.start(paths.devicePlugins(), paths.podResourcesSocket());
        return kubelet;
    }

    /** The running kubelet simulator. */
    public KubeletSimulator kubelet() {
        if (kubelet == null) {
            throw new IllegalStateException("the kubelet simulator of " + paths.root() + " was not started");
        }
        return kubelet;
    }

    /** Starts an agent JVM on {@code config} without waiting for anything; its log is {@code agent-<n>.log}. */
    public AgentJvm launch(Path config, List<String> jvmOptions) {
        AgentJvm agent = AgentJvm.start(
                config, sim.env(), paths.root().resolve("agent-" + (agents.size() + 1) + ".log"), jvmOptions);
        agents.add(agent);
        return agent;
    }

    /** Starts an agent and waits until it serves its plugin socket ({@code event=agent_started}). */
    public AgentJvm startServing(Path config, List<String> jvmOptions, Duration timeout) {
        AgentJvm agent = launch(config, jvmOptions);
        agent.awaitLog("event=agent_started", timeout);
        return agent;
    }

    /** Starts an agent and waits until kubelet has its registration and every GPU's 1000 IDs. */
    public AgentJvm boot(Path config, List<String> jvmOptions) {
        AgentJvm agent = startServing(config, jvmOptions, START_TIMEOUT);
        awaitAdvertised(kubelet(), sim.gpus().size());
        return agent;
    }

    /** kubelet has the milli-GPU registration and the full list of {@code gpus}·1000 IDs. */
    public static void awaitAdvertised(KubeletSimulator kubelet, int gpus) {
        kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
        kubelet.awaitDevices(RESOURCE, devices -> devices.size() == gpus * 1000, Duration.ofSeconds(30));
    }

    /** A loopback TCP port nobody listens on now (several agents may run at once). */
    public static int freePort() {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot find a free loopback port", e);
        }
    }

    @Override
    public void close() {
        try {
            for (AgentJvm agent : agents) {
                agent.close();
            }
        } finally {
            if (kubelet != null) {
                kubelet.close();
            }
        }
    }
}
