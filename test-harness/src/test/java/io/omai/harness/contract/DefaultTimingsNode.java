package io.omai.harness.contract;

import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * One node for the kubelet-contract tests: simulated GPUs, a kubelet simulator and the agent as its own JVM with
 * the configuration an operator would write (kubelet's timings left at their defaults, so the agent behaves as
 * it does in production), plus whatever YAML a test adds.
 */
final class DefaultTimingsNode implements AutoCloseable {
    static final String RESOURCE = "omai.io/milli-gpu";

    final Path root;
    final SimNode sim;
    final Path devicePlugins;
    final Path podResources;
    final KubeletSimulator kubelet;
    private final List<AgentJvm> agents = new ArrayList<>();

    DefaultTimingsNode(Path root) throws IOException {
        this.root = root;
        this.sim = SimNode.create(root.resolve("sim"), 1, 16L << 30);
        this.devicePlugins = root.resolve("device-plugins");
        this.podResources = root.resolve("pod-resources/kubelet.sock");
        Files.createDirectories(devicePlugins);
        this.kubelet = KubeletSimulator.start(devicePlugins, podResources);
    }

    Path shimLibrary() {
        return sim.buildDir().resolve("lib/libomai-shim.so");
    }

    /** A configuration file for this node; {@code extra} is appended as written (top-level keys). */
    Path config(String name, String extra) throws IOException {
        return config(name, shimLibrary(), extra);
    }

    Path config(String name, Path shim, String extra) throws IOException {
        Path file = root.resolve(name);
        Files.writeString(file, """
                version: 1
                nodeName: contract-node
                directories:
                  devicePlugin: %s
                  podResourcesSocket: %s
                  state: %s
                shim:
                  hostLibrary: %s
                nvml:
                  library: %s
                metrics:
                  address: 127.0.0.1
                  port: %d
                schedulerApi:
                  address: 127.0.0.1
                  port: %d
                """.formatted(devicePlugins, podResources, root.resolve("state"), shim,
                sim.buildDir().resolve("sim/libnvidia-ml.so.1"), freePort(), freePort()) + extra);
        return file;
    }

    /** Starts the agent JVM on {@code config} without waiting for anything. */
    AgentJvm launch(Path config) {
        AgentJvm agent = AgentJvm.start(config, sim.env(), root.resolve("agent-" + (agents.size() + 1) + ".log"),
                AgentJvm.QUICK_START);
        agents.add(agent);
        return agent;
    }

    /** Starts the agent and waits until the kubelet has its registration with a ListAndWatch stream open. */
    AgentJvm startRegistered() throws IOException {
        AgentJvm agent = launch(config("agent.yaml", ""));
        agent.awaitLog("event=agent_started", Duration.ofSeconds(60));
        kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
        return agent;
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    @Override
    public void close() {
        try {
            for (AgentJvm agent : agents) {
                agent.close();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            kubelet.close();
        }
    }
}
