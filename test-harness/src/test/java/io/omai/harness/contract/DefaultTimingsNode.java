package io.omai.harness.contract;

import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.nio.file.Path;

/**
 * One node for the kubelet-contract tests ({@link SimulatedAgentNode}) with the agent as its own JVM and
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
    private final SimulatedAgentNode node;

    DefaultTimingsNode(Path root) throws IOException {
        this.root = root;
        this.node = SimulatedAgentNode.create(root, 1, 16L << 30);
        this.sim = node.sim();
        this.devicePlugins = node.paths().devicePlugins();
        this.podResources = node.paths().podResourcesSocket();
        this.kubelet = node.startKubelet();
    }

    Path shimLibrary() {
        return node.paths().shimLibrary();
    }

    /** A configuration file for this node; {@code extra} is appended as written (top-level keys). */
    Path config(String name, String extra) throws IOException {
        return config(name, shimLibrary(), extra);
    }

    Path config(String name, Path shim, String extra) throws IOException {
        return node.yaml("contract-node")
                .set("shim.hostLibrary", shim)
                .metrics(SimulatedAgentNode.freePort())
                .schedulerApi(SimulatedAgentNode.freePort())
                .appendRaw(extra)
                .writeTo(root.resolve(name));
    }

    /** Starts the agent JVM on {@code config} without waiting for anything. */
    AgentJvm launch(Path config) {
        return node.launch(config, AgentJvm.QUICK_START);
    }

    /** Starts the agent and waits until the kubelet has its registration with a ListAndWatch stream open. */
    AgentJvm startRegistered() throws IOException {
        return node.boot(config("agent.yaml", ""), AgentJvm.QUICK_START);
    }

    @Override
    public void close() {
        node.close();
    }
}
