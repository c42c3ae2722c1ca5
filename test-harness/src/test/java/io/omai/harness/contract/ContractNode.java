package io.omai.harness.contract;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.omai.harness.kubelet.KubeletSimulator;
import io.omai.harness.launcher.AgentJvm;
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
        Files.writeString(config, """
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
                kubelet:
                  registrationBackoffMax: 1s
                  reconcileInterval: %dms
                  releaseGracePeriod: %dms
                metrics:
                  address: 127.0.0.1
                  port: %d
                schedulerApi:
                  enabled: false
                """.formatted(devicePlugins, podResources, stateDir,
                sim.buildDir().resolve("lib/libomai-shim.so"), sim.buildDir().resolve("sim/libnvidia-ml.so.1"),
                RECONCILE.toMillis(), GRACE.toMillis(), freePort()));
        this.kubelet = KubeletSimulator.start(devicePlugins, podResources);
    }

    private static int freePort() throws IOException {
        try (java.net.ServerSocket socket = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    /** Starts an agent JVM without waiting for anything. */
    AgentJvm launch() {
        return launch(List.of());
    }

    /** As {@link #launch()}, with JVM options added to this node's for this start only. */
    AgentJvm launch(List<String> extraJvmOptions) {
        List<String> options = new ArrayList<>(jvmOptions);
        options.addAll(extraJvmOptions);
        AgentJvm agent = AgentJvm.start(config, sim.env(), root.resolve("agent-" + (++starts) + ".log"), options);
        agents.add(agent);
        return agent;
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
        AgentJvm agent = launch(extraJvmOptions);
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
