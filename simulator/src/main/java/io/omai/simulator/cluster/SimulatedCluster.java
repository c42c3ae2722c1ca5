package io.omai.simulator.cluster;

import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.ServiceBuilder;
import io.fabric8.kubernetes.api.model.discovery.v1.Endpoint;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointBuilder;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSliceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.mockwebserver.Context;
import io.fabric8.mockwebserver.MockWebServer;
import io.omai.simulator.kubeapi.ClusterCrudDispatcher;
import io.omai.simulator.node.SimulatedAgentNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A small simulated cluster: N nodes, each a {@link SimulatedAgentNode} (simulated GPUs, one InfiniBand HCA with
 * VFs in a fake sysfs, its own kubelet simulator and the agent as its own JVM), and one in-process Kubernetes API
 * (fabric8's mock, {@link ClusterCrudDispatcher}) that every agent's informer watches. The API holds what a
 * scheduler extender reads: the Nodes with their allocatable {@code omai.io/milli-gpu} and {@code omai.io/ib-vf},
 * the agents' headless Service and its EndpointSlice (one endpoint per node: its scheduler API address and
 * {@code nodeName}); it answers Bindings and TokenReviews (the extender's service-account token, written to
 * {@link #tokenFile()}, is accepted).
 *
 * <p>Each agent's scheduler API listens on its own loopback address (127.0.0.11, .12, ...) at one shared port, as
 * agents on real nodes share the DaemonSet's port on different IPs.
 */
public final class SimulatedCluster implements AutoCloseable {
    public static final String MILLI_GPU = SimulatedAgentNode.RESOURCE;
    public static final String IB_VF = "omai.io/ib-vf";
    /** The agents' headless Service, as the DaemonSet manifests name it. */
    public static final String AGENT_NAMESPACE = "omai-system";

    public static final String AGENT_SERVICE = "omai-agent";
    public static final String SCHEDULER_API_PORT_NAME = "sched-api";
    /** The extender's service account, the identity the agents allow to Reserve and Release by default. */
    public static final String EXTENDER_USER = "system:serviceaccount:omai-system:omai-scheduler-extender";

    public static final long GPU_MEMORY = 80L << 30;
    /** Held here: java.util.logging keeps loggers weakly, and a collected one would forget its level. */
    private static final Logger MOCK_SERVER_LOG = Logger.getLogger("io.fabric8.mockwebserver");

    private final KubernetesMockServer server;
    private final ClusterCrudDispatcher dispatcher;
    private final KubernetesClient client;
    private final List<ClusterNode> nodes;
    private final Path tokenFile;
    private final int schedulerApiPort;

    /**
     * What to start.
     *
     * @param gpusPerNode one entry per node: its GPU count (2–4 in the cluster tests)
     * @param vfsPerNode VFs of each node's HCA
     * @param trainNodes how many of the first nodes label their GPUs {@code class: train}; the others
     *     {@code class: infer} (what {@code omai.io/gpu-selector} expressions select on)
     * @param agentSettings extra {@code section.key} settings for every agent (e.g. the scheduler API's auth)
     * @param jvmOptions the agents' JVM options
     */
    public record Options(
            List<Integer> gpusPerNode,
            int vfsPerNode,
            int trainNodes,
            Map<String, String> agentSettings,
            List<String> jvmOptions) {
        public Options {
            gpusPerNode = List.copyOf(gpusPerNode);
            agentSettings = Map.copyOf(agentSettings);
            jvmOptions = List.copyOf(jvmOptions);
            if (gpusPerNode.isEmpty() || gpusPerNode.size() > 200) {
                throw new IllegalArgumentException("a simulated cluster needs 1..200 nodes, got " + gpusPerNode.size());
            }
            for (int gpus : gpusPerNode) {
                if (gpus < 1 || gpus > 8) {
                    throw new IllegalArgumentException("a simulated node has 1..8 GPUs, got " + gpus);
                }
            }
            if (vfsPerNode < 0 || vfsPerNode > 64) {
                throw new IllegalArgumentException("a simulated HCA has 0..64 VFs, got " + vfsPerNode);
            }
        }

        /** {@code nodes} nodes of 2, 3, 4, 2, ... GPUs, 4 VFs each, all but the last labelled train. */
        public static Options of(int nodes, List<String> jvmOptions) {
            List<Integer> gpus = new ArrayList<>();
            for (int i = 0; i < nodes; i++) {
                gpus.add(2 + i % 3);
            }
            return new Options(gpus, 4, Math.max(1, nodes - 1), Map.of(), jvmOptions);
        }
    }

    private SimulatedCluster(
            KubernetesMockServer server,
            ClusterCrudDispatcher dispatcher,
            KubernetesClient client,
            List<ClusterNode> nodes,
            Path tokenFile,
            int schedulerApiPort) {
        this.server = server;
        this.dispatcher = dispatcher;
        this.client = client;
        this.nodes = List.copyOf(nodes);
        this.tokenFile = tokenFile;
        this.schedulerApiPort = schedulerApiPort;
    }

    /** Starts the API, every node's kubelet and agent, and waits until kubelet has every node's devices. */
    public static SimulatedCluster start(Path root, Options options) {
        Cleanup cleanup = new Cleanup();
        try {
            String token = UUID.randomUUID().toString();
            Path tokenFile = writeToken(root.resolve("extender-token"), token);
            ClusterCrudDispatcher dispatcher = new ClusterCrudDispatcher().acceptToken(token, EXTENDER_USER);
            MOCK_SERVER_LOG.setLevel(Level.WARNING); // one INFO line per request
            KubernetesMockServer server =
                    new KubernetesMockServer(new Context(), new MockWebServer(), new HashMap<>(), dispatcher, false);
            server.init(InetAddress.getLoopbackAddress(), 0);
            cleanup.add(server::destroy);
            KubernetesClient client = server.createClient();
            cleanup.add(client::close);
            String apiUrl = "http://127.0.0.1:" + server.getPort();

            int port = SimulatedAgentNode.freePort();
            List<ClusterNode> nodes = new ArrayList<>();
            for (int i = 0; i < options.gpusPerNode().size(); i++) {
                ClusterNode node = ClusterNode.launch(
                        root.resolve("node-" + (i + 1)),
                        "node-" + (i + 1),
                        i,
                        options.gpusPerNode().get(i),
                        options.vfsPerNode(),
                        i < options.trainNodes() ? "train" : "infer",
                        "127.0.0." + (11 + i),
                        port,
                        apiUrl,
                        options);
                cleanup.add(node::close);
                nodes.add(node);
            }
            for (ClusterNode node : nodes) {
                node.awaitReady();
                registerNode(client, node);
            }
            publishEndpoints(client, nodes, port);
            return new SimulatedCluster(server, dispatcher, client, nodes, tokenFile, port);
        } catch (RuntimeException e) {
            try {
                cleanup.run();
            } catch (RuntimeException undo) {
                e.addSuppressed(undo);
            }
            throw e;
        }
    }

    private static Path writeToken(Path file, String token) {
        try {
            Files.writeString(file, token);
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the extender's token " + file, e);
        }
    }

    /** The Node as kubelet registers it: allocatable extended resources from the device plugins' counts. */
    private static void registerNode(KubernetesClient client, ClusterNode node) {
        Map<String, Quantity> allocatable = Map.of(
                MILLI_GPU,
                new Quantity(Integer.toString(node.gpus() * 1000)),
                IB_VF,
                new Quantity(Integer.toString(node.vfs())),
                "cpu",
                new Quantity("64"),
                "memory",
                new Quantity("512Gi"),
                "pods",
                new Quantity("110"));
        client.nodes()
                .resource(new NodeBuilder()
                        .withNewMetadata()
                        .withName(node.name())
                        .addToLabels("kubernetes.io/hostname", node.name())
                        .endMetadata()
                        .withNewStatus()
                        .withCapacity(allocatable)
                        .withAllocatable(allocatable)
                        .endStatus()
                        .build())
                .create();
    }

    /** The agents' headless Service and its EndpointSlice, as the EndpointSlice controller publishes them. */
    private static void publishEndpoints(KubernetesClient client, List<ClusterNode> nodes, int port) {
        client.services()
                .inNamespace(AGENT_NAMESPACE)
                .resource(new ServiceBuilder()
                        .withNewMetadata()
                        .withName(AGENT_SERVICE)
                        .withNamespace(AGENT_NAMESPACE)
                        .endMetadata()
                        .withNewSpec()
                        .withClusterIP("None")
                        .addToSelector("app.kubernetes.io/name", "omai-agent")
                        .addNewPort()
                        .withName(SCHEDULER_API_PORT_NAME)
                        .withPort(port)
                        .withProtocol("TCP")
                        .endPort()
                        .endSpec()
                        .build())
                .create();
        List<Endpoint> endpoints = nodes.stream()
                .map(node -> new EndpointBuilder()
                        .withAddresses(node.schedulerApiAddress())
                        .withNodeName(node.name())
                        .withNewConditions()
                        .withReady(true)
                        .withServing(true)
                        .withTerminating(false)
                        .endConditions()
                        .withNewTargetRef()
                        .withKind("Pod")
                        .withNamespace(AGENT_NAMESPACE)
                        .withName("omai-agent-" + node.name())
                        .endTargetRef()
                        .build())
                .toList();
        client.discovery()
                .v1()
                .endpointSlices()
                .inNamespace(AGENT_NAMESPACE)
                .resource(new EndpointSliceBuilder()
                        .withNewMetadata()
                        .withName(AGENT_SERVICE + "-sim")
                        .withNamespace(AGENT_NAMESPACE)
                        .addToLabels("kubernetes.io/service-name", AGENT_SERVICE)
                        .addToLabels("endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io")
                        .endMetadata()
                        .withAddressType("IPv4")
                        .withEndpoints(endpoints)
                        .addNewPort()
                        .withName(SCHEDULER_API_PORT_NAME)
                        .withPort(port)
                        .withProtocol("TCP")
                        .endPort()
                        .build())
                .create();
    }

    public List<ClusterNode> nodes() {
        return nodes;
    }

    public ClusterNode node(String name) {
        return nodes.stream()
                .filter(node -> node.name().equals(name))
                .findFirst()
                .orElseThrow(() -> new IllegalArgumentException("the simulated cluster has no node '" + name
                        + "'; it has " + nodes.stream().map(ClusterNode::name).toList()));
    }

    /** A client of the cluster's API (the one the extender and the scheduler driver use). */
    public KubernetesClient client() {
        return client;
    }

    /** A new client of the cluster's API (one per extender replica, as each runs in its own pod); the caller
     * closes it. */
    public KubernetesClient newClient() {
        return server.createClient();
    }

    /** The URL of the in-process Kubernetes API server. */
    public String apiUrl() {
        return "http://127.0.0.1:" + server.getPort();
    }

    public ClusterCrudDispatcher api() {
        return dispatcher;
    }

    /** The extender's projected service-account token (accepted by the API's TokenReviews). */
    public Path tokenFile() {
        return tokenFile;
    }

    /** The agents' scheduler API port (the same on every node's address). */
    public int schedulerApiPort() {
        return schedulerApiPort;
    }

    /** Total {@code omai.io/milli-gpu} capacity of the cluster. */
    public int milliCapacity() {
        return nodes.stream().mapToInt(node -> node.gpus() * 1000).sum();
    }

    @Override
    public void close() {
        Cleanup cleanup = new Cleanup();
        cleanup.add(server::destroy);
        cleanup.add(client::close);
        nodes.forEach(node -> cleanup.add(node::close));
        cleanup.run();
    }

    /** How long every agent may take to start together on a loaded 2-core machine. */
    static final Duration START_TIMEOUT = Duration.ofMinutes(2);
}
