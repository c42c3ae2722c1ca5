package io.omai.harness.contract;

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
import java.util.ArrayList;
import java.util.List;

/**
 * One simulated node for the kubelet-contract tests ({@link SimulatedAgentNode}: simulated GPUs, a kubelet simulator
 * and the agent as its own JVM), with reconciliation every 100 ms and a short release grace period, so a restart's "one reconcile + grace"
 * passes in well under a second. The scheduler API is off (not under test; it only adds start time).
 */
final class ContractNode implements AutoCloseable {
    static final String RESOURCE = "omai.io/milli-gpu";
    static final Duration GRACE = Duration.ofMillis(600);
    static final Duration RECONCILE = Duration.ofMillis(100);

    final Path root;
    final SimNode sim;
    final KubeletSimulator kubelet;
    final Path config;
    final Path stateDir;
    final Path pluginSocket;
    private final SimulatedAgentNode node;
    private final List<String> jvmOptions;

    ContractNode(Path root, int gpus, List<String> jvmOptions) throws IOException {
        this.root = root;
        this.jvmOptions = List.copyOf(jvmOptions);
        this.node = SimulatedAgentNode.create(root, gpus, 16L << 30);
        this.sim = node.sim();
        this.stateDir = node.paths().state();
        this.pluginSocket = node.paths().devicePlugins().resolve("omai-io-milli-gpu.sock");
        this.config = node.yaml("contract-node")
                .quickKubelet(RECONCILE, GRACE)
                .metrics(SimulatedAgentNode.freePort())
                .schedulerApiOff()
                .writeTo(root.resolve("agent.yaml"));
        this.kubelet = node.startKubelet();
    }

    /** Starts an agent JVM without waiting for anything. */
    AgentJvm launch() {
        return launch(List.of());
    }

    /** As {@link #launch()}, with JVM options added to this node's for this start only. */
    AgentJvm launch(List<String> extraJvmOptions) {
        List<String> options = new ArrayList<>(jvmOptions);
        options.addAll(extraJvmOptions);
        return node.launch(config, options);
    }

    /**
     * Starts an agent JVM and waits until it serves its plugin socket (event {@code agent_started}), without
     * waiting for kubelet's registration round trip: callers that only need Allocate dial the socket themselves.
     */
    AgentJvm startServing(Duration timeout) {
        return startServing(timeout, List.of());
    }

    /** As {@link #startServing(Duration)}, with JVM options added for this start only. */
    AgentJvm startServing(Duration timeout, List<String> extraJvmOptions) {
        List<String> options = new ArrayList<>(jvmOptions);
        options.addAll(extraJvmOptions);
        return node.startServing(config, options, timeout);
    }

    /** Starts an agent JVM and waits until the current kubelet has its new registration with a stream open. */
    AgentJvm startAndRegister(Duration timeout) {
        int before = (int) kubelet.registrations().stream()
                .filter(r -> r.resourceName().equals(RESOURCE))
                .count();
        AgentJvm agent = launch();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (kubelet.registrations().stream()
                        .filter(r -> r.resourceName().equals(RESOURCE))
                        .count()
                <= before) {
            if (!agent.alive() || System.nanoTime() > deadline) {
                throw new AssertionError("the agent did not register within " + timeout + ":\n" + agent.log());
            }
            sleep(Duration.ofMillis(10));
        }
        kubelet.awaitRegistration(RESOURCE, timeout);
        return agent;
    }

    /** The checkpoint's allocations as stored, or an empty array when there is none yet. */
    JsonNode checkpointAllocations() throws IOException {
        Path file = stateDir.resolve("ledger.json");
        if (!Files.exists(file)) {
            return new ObjectMapper().createArrayNode();
        }
        return new ObjectMapper().readTree(file.toFile()).get("allocations");
    }

    static void sleep(Duration duration) {
        try {
            Thread.sleep(duration);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    @Override
    public void close() {
        node.close();
    }
}
