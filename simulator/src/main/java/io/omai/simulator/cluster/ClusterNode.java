package io.omai.simulator.cluster;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.node.AgentYaml;
import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.node.SimulatedHca;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One node of a {@link SimulatedCluster}: a {@link SimulatedAgentNode} with its kubelet simulator, an HCA with VFs
 * and the agent JVM, whose scheduler API listens on the node's own loopback address. {@link #admit} is kubelet's
 * side of a pod bound to this node.
 */
public final class ClusterNode implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ClusterNode.class);

    private final String name;
    private final SimulatedAgentNode node;
    private final SimulatedHca hca;
    private final AgentJvm agent;
    private final String schedulerApiAddress;
    private final int schedulerApiPort;
    private final ManagedChannel channel;

    private ClusterNode(
            String name,
            SimulatedAgentNode node,
            SimulatedHca hca,
            AgentJvm agent,
            String schedulerApiAddress,
            int schedulerApiPort) {
        this.name = name;
        this.node = node;
        this.hca = hca;
        this.agent = agent;
        this.schedulerApiAddress = schedulerApiAddress;
        this.schedulerApiPort = schedulerApiPort;
        this.channel = ManagedChannelBuilder.forAddress(schedulerApiAddress, schedulerApiPort)
                .usePlaintext()
                .build();
    }

    /** Creates the node under {@code root} and starts its kubelet and agent; waits for nothing. */
    static ClusterNode launch(
            Path root,
            String name,
            int index,
            int gpus,
            int vfs,
            String gpuClass,
            String schedulerApiAddress,
            int schedulerApiPort,
            String apiUrl,
            SimulatedCluster.Options options) {
        SimulatedAgentNode node = SimulatedAgentNode.create(root, gpus, SimulatedCluster.GPU_MEMORY);
        try {
            node.startKubelet();
            // each node its own GUID range, as a fabric's subnet manager would hand out
            String guidRange = String.format(
                    Locale.ROOT, "02:00:00:07:00:%02x:00:00-02:00:00:07:00:%02x:ff:ff", index + 1, index + 1);
            SimulatedHca hca = SimulatedHca.provision(node.paths(), name, guidRange, vfs);
            AgentYaml yaml = hca.configure(node.yaml(name)
                    .set("nvml.recoveryDebounce", "2s")
                    .quickKubelet(Duration.ofSeconds(1), Duration.ofSeconds(5))
                    .metrics(SimulatedAgentNode.freePort())
                    .schedulerApi(schedulerApiPort)
                    .set("schedulerApi.address", schedulerApiAddress)
                    .set(
                            "schedulerApi.deviceLabels",
                            "\n    - select: all\n      attributes: {class: " + gpuClass + ", node: " + name
                                    + "}\n      tags: [simulated]")
                    .set("tenancy.kubernetesApi", "on")
                    .set("tenancy.identifyWait", "5s"));
            options.agentSettings().forEach(yaml::set);
            List<String> jvm = new ArrayList<>(options.jvmOptions());
            // the agent builds its Kubernetes client from these, never from the machine's kubeconfig
            jvm.add("-Dkubernetes.master=" + apiUrl);
            jvm.add("-Dkubernetes.auth.tryKubeConfig=false");
            jvm.add("-Dkubernetes.auth.tryServiceAccount=false");
            jvm.add("-Dkubernetes.namespace=" + SimulatedCluster.AGENT_NAMESPACE);
            AgentJvm agent = node.launch(yaml.writeTo(root.resolve("agent.yaml")), jvm);
            return new ClusterNode(name, node, hca, agent, schedulerApiAddress, schedulerApiPort);
        } catch (RuntimeException e) {
            node.close();
            throw e;
        }
    }

    /** Waits until the agent serves and kubelet has its milli-GPU and VF registrations and every device. */
    void awaitReady() {
        agent.awaitLog("event=agent_started", SimulatedCluster.START_TIMEOUT);
        SimulatedAgentNode.awaitAdvertised(node.kubelet(), gpus());
        if (hca.vfs() > 0) {
            node.kubelet().awaitRegistration(SimulatedCluster.IB_VF, Duration.ofSeconds(30));
            node.kubelet()
                    .awaitDevices(
                            SimulatedCluster.IB_VF, devices -> devices.size() == hca.vfs(), Duration.ofSeconds(30));
        }
        log.info(
                "event=cluster_node_ready node={} gpus={} vfs={} scheduler_api={}:{}",
                name,
                gpus(),
                hca.vfs(),
                schedulerApiAddress,
                schedulerApiPort);
    }

    public String name() {
        return name;
    }

    public int gpus() {
        return node.sim().gpus().size();
    }

    public int vfs() {
        return hca.vfs();
    }

    public String schedulerApiAddress() {
        return schedulerApiAddress;
    }

    public KubeletSimulator kubelet() {
        return node.kubelet();
    }

    public AgentJvm agent() {
        return agent;
    }

    public Path root() {
        return node.root();
    }

    /** The agent's state as a scheduler reads it (GetNodeState). */
    public NodeState state() {
        return NodeAgentGrpc.newBlockingStub(channel)
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .getNodeState(GetNodeStateRequest.getDefaultInstance());
    }

    /** What kubelet did for one pod: its containers' device IDs per resource, or why admission failed. */
    public record Admission(
            String namespace, String pod, String node, List<String> deviceIds, Optional<String> failure) {
        public boolean admitted() {
            return failure.isEmpty();
        }
    }

    /**
     * kubelet admitting pod {@code namespace/name} once it sees it bound to this node: for each container in
     * kubelet's order (init containers, then the others) and each of our resources it asks for, the device
     * manager's path (GetPreferredAllocation, Allocate, PodResources); then the pod runs. An Allocate error is
     * kubelet's {@code UnexpectedAdmissionError}: the pod is marked Failed and the failure returned. One pod at a
     * time, as kubelet admits them.
     *
     * @param thenRun mark the pod Running at once (else the caller does, {@link #markRunning})
     */
    public synchronized Admission admit(
            KubernetesClient client, String namespace, String podName, Duration timeout, boolean thenRun) {
        Pod pod = awaitBoundHere(client, namespace, podName, timeout);
        List<String> ids = new ArrayList<>();
        List<Container> containers = new ArrayList<>(pod.getSpec().getInitContainers());
        containers.addAll(pod.getSpec().getContainers());
        try {
            for (Container container : containers) {
                for (String resource : List.of(SimulatedCluster.MILLI_GPU, SimulatedCluster.IB_VF)) {
                    int count = limit(container, resource);
                    if (count > 0) {
                        KubeletSimulator.Admission admission =
                                node.kubelet().admit(namespace, podName, container.getName(), resource, count);
                        ids.addAll(admission.deviceIds());
                        log.info(
                                "event=kubelet_admitted node={} pod={}/{} container={} resource={} devices={}..{} "
                                        + "allocation={}",
                                name,
                                namespace,
                                podName,
                                container.getName(),
                                resource,
                                admission.deviceIds().getFirst(),
                                admission.deviceIds().getLast(),
                                admission.response().getEnvsMap().getOrDefault("OMAI_ALLOCATION_ID", "-"));
                    }
                }
            }
        } catch (StatusRuntimeException | IllegalStateException e) {
            String reason = "UnexpectedAdmissionError: " + e.getMessage();
            log.warn("event=admission_failed node={} pod={}/{} reason={}", name, namespace, podName, reason);
            node.kubelet().podResources().removePod(namespace, podName);
            setPhase(client, namespace, podName, "Failed");
            return new Admission(namespace, podName, name, List.of(), Optional.of(reason));
        }
        if (thenRun) {
            markRunning(client, namespace, podName);
        }
        return new Admission(namespace, podName, name, ids, Optional.empty());
    }

    private Pod awaitBoundHere(KubernetesClient client, String namespace, String podName, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            Pod pod = client.pods().inNamespace(namespace).withName(podName).get();
            if (pod != null
                    && pod.getSpec() != null
                    && name.equals(pod.getSpec().getNodeName())) {
                return pod;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("pod " + namespace + "/" + podName + " was not bound to " + name
                        + " within " + timeout + (pod == null ? " (no such pod)" : ""));
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted waiting for pod " + namespace + "/" + podName, e);
            }
        }
    }

    /** A container's count of an extended resource: its limit (requests equal limits for these), else 0. */
    static int limit(Container container, String resource) {
        if (container.getResources() == null) {
            return 0;
        }
        Quantity quantity = Optional.ofNullable(container.getResources().getLimits())
                .map(limits -> limits.get(resource))
                .or(() -> Optional.ofNullable(container.getResources().getRequests())
                        .map(requests -> requests.get(resource)))
                .orElse(null);
        return quantity == null ? 0 : Quantity.getAmountInBytes(quantity).intValueExact();
    }

    /** The pod's containers started: its phase is Running. */
    public static void markRunning(KubernetesClient client, String namespace, String podName) {
        setPhase(client, namespace, podName, "Running");
    }

    private static void setPhase(KubernetesClient client, String namespace, String podName, String phase) {
        client.pods()
                .inNamespace(namespace)
                .withName(podName)
                .editStatus(p -> new PodBuilder(p)
                        .editOrNewStatus()
                        .withPhase(phase)
                        .endStatus()
                        .build());
    }

    @Override
    public void close() {
        channel.shutdownNow();
        node.close();
    }
}
