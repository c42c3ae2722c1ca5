package io.omai.harness.contract;

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
        AgentYaml.simulatedNode("contract-node", devicePlugins, podResources, root.resolve("state"), sim.buildDir())
                .set("shim", "hostLibrary", shim)
                .metricsOnFreePort()
                .schedulerApiOn(AgentYaml.freeLoopbackPort())
                .write(file, extra);
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

    @Override
    public void close() {
        AgentJvm.closeAll(agents); // never throws: an interrupt is kept for the caller
        kubelet.close();
    }
}
