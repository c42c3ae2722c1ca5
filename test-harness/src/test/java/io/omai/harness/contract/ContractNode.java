package io.omai.harness.contract;

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
 * One simulated node for the kubelet-contract tests: simulated GPUs, a kubelet simulator and the agent as its own
 * JVM, with reconciliation every 100 ms and a short release grace period, so a restart's "one reconcile + grace"
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
    private final List<AgentJvm> agents = new ArrayList<>();
    private final List<String> jvmOptions;
    private int starts;

    ContractNode(Path root, int gpus, List<String> jvmOptions) throws IOException {
        this.root = root;
        this.jvmOptions = List.copyOf(jvmOptions);
        this.sim = SimNode.create(root.resolve("sim"), gpus, 16L << 30);
        this.stateDir = root.resolve("state");
        Path devicePlugins = Files.createDirectories(root.resolve("device-plugins"));
        this.pluginSocket = devicePlugins.resolve("omai-io-milli-gpu.sock");
        Path podResources = root.resolve("pod-resources/kubelet.sock");
        this.config = root.resolve("agent.yaml");
        AgentYaml.simulatedNode("contract-node", devicePlugins, podResources, stateDir, sim.buildDir())
                .set("kubelet", "registrationBackoffMax", "1s")
                .set("kubelet", "reconcileInterval", RECONCILE.toMillis() + "ms")
                .set("kubelet", "releaseGracePeriod", GRACE.toMillis() + "ms")
                .metricsOnFreePort()
                .set("schedulerApi", "enabled", false)
                .write(config);
        this.kubelet = KubeletSimulator.start(devicePlugins, podResources);
    }

    /** Starts an agent JVM without waiting for anything. */
    AgentJvm launch() {
        AgentJvm agent = AgentJvm.start(config, sim.env(), root.resolve("agent-" + (++starts) + ".log"), jvmOptions);
        agents.add(agent);
        return agent;
    }

    /**
     * Starts an agent JVM and waits until it serves its plugin socket (event {@code agent_started}), without
     * waiting for kubelet's registration round trip: callers that only need Allocate dial the socket themselves.
     */
    AgentJvm startServing(Duration timeout) {
        AgentJvm agent = launch();
        agent.awaitLog("event=agent_started", timeout);
        return agent;
    }

    /** Starts an agent JVM and waits until the current kubelet has its new registration with a stream open. */
    AgentJvm startAndRegister(Duration timeout) {
        int before = (int) kubelet.registrations().stream().filter(r -> r.resourceName().equals(RESOURCE)).count();
        AgentJvm agent = launch();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (kubelet.registrations().stream().filter(r -> r.resourceName().equals(RESOURCE)).count() <= before) {
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
        AgentJvm.closeAll(agents); // never throws: an interrupt is kept for the caller
        kubelet.close();
    }
}
