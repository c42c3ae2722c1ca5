package io.omai.harness.contract;

import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.kubelet.PluginEndpoint;
import io.omai.simulator.kubelet.PodResourcesTable;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A simulated GPU node for the kubelet-contract suite ({@link SimulatedAgentNode}: simulated GPUs, the kubelet
 * simulator and the real agent as its own JVM), with a chosen {@code tenancy.policy} and without the Kubernetes API (so every pod is unknown
 * to the agent, as on a node whose kubelet is all it sees). Departures are shown to the agent only as kubelet
 * shows them: through PodResources, and through the IDs of the next Allocate.
 */
final class AdmissionNode implements AutoCloseable {
    static final String RESOURCE = "omai.io/milli-gpu";
    static final long GPU_MEMORY = 16L << 30;

    final int gpus;
    final SimNode sim;
    final KubeletSimulator kubelet;
    final AgentJvm agent;
    final Path stateDir;
    /** The agent's scheduler API port (plaintext, any client). */
    final int schedulerApiPort;

    private final SimulatedAgentNode node;

    AdmissionNode(Path root, int gpus, String policy) throws IOException {
        this.gpus = gpus;
        this.node = SimulatedAgentNode.create(root, gpus, GPU_MEMORY);
        this.sim = node.sim();
        this.stateDir = node.paths().state();
        this.schedulerApiPort = SimulatedAgentNode.freePort();
        Path config = node.yaml("contract-node")
                .quickKubelet(Duration.ofMillis(300), Duration.ofSeconds(2))
                .set("tenancy.policy", policy)
                .set("tenancy.kubernetesApi", "off")
                .set("tenancy.audit", "\"off\"")
                .metrics(SimulatedAgentNode.freePort())
                .schedulerApi(schedulerApiPort)
                .reserveAuth("none") // admission is under test here, not who may Reserve
                .writeTo(root.resolve("agent.yaml"));
        this.kubelet = node.startKubelet();
        // the shipped JVM flags (daemonset/jvm.options): admission churn is where a too-small heap would show
        this.agent = node.boot(config, AgentJvm.production());
    }

    PluginEndpoint plugin() {
        return kubelet.plugin(RESOURCE);
    }

    /** Admits one container as kubelet does (preference followed, then Allocate, then PodResources). */
    KubeletSimulator.Admission admit(String pod, String container, int size) {
        return kubelet.admit("contract", pod, container, RESOURCE, size);
    }

    /** The pod is gone: kubelet frees its devices at once (PodResources no longer lists it). */
    void depart(String pod) {
        kubelet.podResources().removePod("contract", pod);
    }

    /** kubelet records a container's devices (after an Allocate made directly through {@link #plugin()}). */
    void record(String pod, String container, List<String> ids) {
        kubelet.podResources().put(new PodResourcesTable.ContainerEntry("contract", pod, container, RESOURCE, ids));
    }

    /** kubelet's free IDs per GPU: healthy and held by no container. */
    Map<String, List<String>> freeByGpu() {
        Set<String> held = kubelet.podResources().held(RESOURCE);
        Map<String, List<String>> free = new HashMap<>();
        for (Device device : kubelet.devices(RESOURCE)) {
            if (device.getHealth().equals("Healthy") && !held.contains(device.getID())) {
                String id = device.getID();
                free.computeIfAbsent(id.substring(0, id.lastIndexOf("-m")), gpu -> new ArrayList<>())
                        .add(id);
            }
        }
        return free;
    }

    /** Whether kubelet's free IDs can hold {@code size} without splitting a share (else no pod would fit). */
    boolean fits(int size) {
        Map<String, List<String>> free = freeByGpu();
        if (size < 1000) {
            return free.values().stream().anyMatch(ids -> ids.size() >= size);
        }
        return free.values().stream().filter(ids -> ids.size() == 1000).count() >= size / 1000;
    }

    /** The allocation directories in the agent's state directory. */
    List<Path> allocationDirectories() throws IOException {
        Path dir = stateDir.resolve("allocations");
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.toList();
        }
    }

    /** The control file the agent made for an admitted container, on the host. */
    Path controlFile(io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse response) {
        return stateDir.resolve("allocations")
                .resolve(response.getEnvsOrThrow("OMAI_ALLOCATION_ID"))
                .resolve("control");
    }

    @Override
    public void close() {
        node.close();
    }
}
