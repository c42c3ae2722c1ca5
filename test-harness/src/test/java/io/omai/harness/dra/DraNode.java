package io.omai.harness.dra;

import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResult;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimTemplate;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceSlice;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.kubernetes.client.utils.Serialization;
import io.fabric8.mockwebserver.Context;
import io.fabric8.mockwebserver.MockWebServer;
import io.omai.harness.e2e.Programs;
import io.omai.simulator.dra.CdiRegistry;
import io.omai.simulator.dra.ClaimAllocator;
import io.omai.simulator.dra.DraKubeletSimulator;
import io.omai.simulator.dra.DraPluginClient.ClaimResult;
import io.omai.simulator.kubeapi.ClusterCrudDispatcher;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.launcher.ContainerEdits;
import io.omai.simulator.launcher.ContainerLauncher;
import io.omai.simulator.node.AgentYaml;
import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.function.Predicate;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * A simulated GPU node running both paths: the agent JVM with the device plugin (kubelet simulator) and DRA on
 * ({@link AgentYaml#dra}), a fabric8 mock API server (CRUD) holding the Node, Pods, ResourceClaims, the agent's
 * ResourceSlice and the DeviceClasses of {@code daemonset/components/dra}, the DRA kubelet simulator watching the
 * node's plugins_registry, and kube-scheduler's allocator writing claims' allocations.
 */
final class DraNode implements AutoCloseable {
    static final String NODE = "dra-node";
    static final String DRIVER = AgentYaml.DRA_DRIVER;
    static final String MILLI_GPU = SimulatedAgentNode.RESOURCE;
    static final long GPU_MEMORY = 80L << 30;
    static final String VF_POOL = NODE + "-ib-vf";
    static final Path COMPONENT = repositoryRoot().resolve("daemonset/components/dra");
    /** Held here: java.util.logging keeps loggers weakly, and a collected one would forget its level. */
    private static final Logger MOCK_SERVER_LOG = Logger.getLogger("io.fabric8.mockwebserver");

    final SimulatedAgentNode node;
    final KubernetesMockServer api;
    final KubernetesClient kube;
    final KubeletSimulator kubelet;
    final DraKubeletSimulator dra;
    final ClaimAllocator allocator;
    final Path config;
    private final List<String> jvmOptions;
    private final int gpus;
    AgentJvm agent;

    DraNode(Path root, int gpus) {
        this(root, gpus, "");
    }

    /** With {@code extraYaml} appended to the agent's configuration (e.g. an {@code ib:} section). */
    DraNode(Path root, int gpus, String extraYaml) {
        this.gpus = gpus;
        this.node = SimulatedAgentNode.create(root, gpus, GPU_MEMORY);
        MOCK_SERVER_LOG.setLevel(Level.WARNING);
        this.api = new KubernetesMockServer(
                new Context(), new MockWebServer(), new HashMap<>(), new ClusterCrudDispatcher(), false);
        api.init(InetAddress.getLoopbackAddress(), 0);
        this.kube = api.createClient();
        kube.nodes()
                .resource(new NodeBuilder()
                        .withNewMetadata()
                        .withName(NODE)
                        .endMetadata()
                        .build())
                .create();
        for (String file : List.of("gpu-share.yaml", "gpu.yaml", "ib-vf.yaml")) {
            kube.resource(manifest(COMPONENT.resolve("deviceclasses").resolve(file), HasMetadata.class))
                    .create();
        }
        this.kubelet = node.startKubelet();
        this.config = node.yaml(NODE)
                .dra(node.paths())
                .quickKubelet(Duration.ofMillis(300), Duration.ofSeconds(2))
                .schedulerApiOff()
                .set("tenancy.kubernetesApi", "on")
                .set("tenancy.identifyWait", "2s")
                .writeTo(root.resolve("agent.yaml"));
        if (!extraYaml.isEmpty()) {
            try {
                Files.writeString(config, extraYaml, java.nio.file.StandardOpenOption.APPEND);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        List<String> options = new ArrayList<>(AgentJvm.QUICK_START);
        // the agent builds its client from its usual sources, here system properties naming the mock server
        options.addAll(List.of(
                "-Dkubernetes.master=http://127.0.0.1:" + api.getPort(),
                "-Dkubernetes.auth.tryKubeConfig=false",
                "-Dkubernetes.auth.tryServiceAccount=false",
                "-Dkubernetes.namespace=default"));
        this.jvmOptions = List.copyOf(options);
        this.dra = DraKubeletSimulator.start(node.paths().pluginsRegistry(), kube);
        this.allocator = new ClaimAllocator(kube, NODE);
    }

    /** Starts the agent; returns once kubelet has its milli-GPUs, the DRA driver is registered and the slice is up. */
    AgentJvm startAgent() {
        agent = node.startServing(config, jvmOptions, SimulatedAgentNode.START_TIMEOUT);
        SimulatedAgentNode.awaitAdvertised(kubelet, gpus);
        dra.awaitPlugin(DRIVER, Duration.ofSeconds(30));
        awaitSlice(slice -> slice.getSpec().getDevices().size() == gpus, Duration.ofSeconds(30));
        return agent;
    }

    /** The agent's GPU slice of this node once it satisfies {@code condition}. */
    ResourceSlice awaitSlice(Predicate<ResourceSlice> condition, Duration timeout) {
        return awaitSlice(NODE, condition, timeout);
    }

    /** The agent's slice of pool {@code pool} ({@link #NODE} for GPUs, {@link #VF_POOL} for VFs). */
    ResourceSlice awaitSlice(String pool, Predicate<ResourceSlice> condition, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<ResourceSlice> slices = List.of();
        while (System.nanoTime() < deadline) {
            slices = kube.resources(ResourceSlice.class).list().getItems().stream()
                    .filter(s -> NODE.equals(s.getSpec().getNodeName())
                            && DRIVER.equals(s.getSpec().getDriver())
                            && pool.equals(s.getSpec().getPool().getName()))
                    .toList();
            if (slices.size() == 1 && condition.test(slices.getFirst())) {
                return slices.getFirst();
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
        throw new AssertionError(
                "the node's ResourceSlice of pool " + pool + " never reached the expected state within " + timeout
                        + "; slices now: " + slices + "\nagent log:\n" + (agent == null ? "" : agent.log()));
    }

    /** A pod bound to this node, of {@code tenant} (its omai.io/tenant label). */
    Pod createPod(String namespace, String name, String tenant) {
        return kube.pods()
                .inNamespace(namespace)
                .resource(new PodBuilder()
                        .withNewMetadata()
                        .withName(name)
                        .withNamespace(namespace)
                        .withUid(UUID.randomUUID().toString())
                        .withLabels(Map.of("omai.io/tenant", tenant))
                        .endMetadata()
                        .withNewSpec()
                        .withNodeName(NODE)
                        .addNewContainer()
                        .withName("main")
                        .withImage("workload")
                        .endContainer()
                        .endSpec()
                        .build())
                .create();
    }

    /** A pending pod whose container asks the device plugin for {@code milli} milli-GPUs, as kubelet admits it. */
    Pod createDevicePluginPod(String namespace, String name, String tenant, int milli) {
        return kube.pods()
                .inNamespace(namespace)
                .resource(new PodBuilder()
                        .withNewMetadata()
                        .withName(name)
                        .withNamespace(namespace)
                        .withUid(UUID.randomUUID().toString())
                        .withLabels(Map.of("omai.io/tenant", tenant))
                        .endMetadata()
                        .withNewSpec()
                        .withNodeName(NODE)
                        .addNewContainer()
                        .withName("main")
                        .withImage("workload")
                        .withNewResources()
                        .addToLimits(MILLI_GPU, new Quantity(Integer.toString(milli)))
                        .endResources()
                        .endContainer()
                        .endSpec()
                        .withNewStatus()
                        .withPhase("Pending")
                        .endStatus()
                        .build())
                .create();
    }

    /**
     * SIGKILL the agent (no shutdown hook) and start it again on the same configuration; returns once kubelet has
     * registered the new instance's sockets (the killed one's stay behind until the new agent replaces them).
     */
    AgentJvm restartAgentAfterSigkill() throws InterruptedException {
        long registeredBefore = dra.events().stream()
                .filter(DraKubeletSimulator.RegistrationEvent::registered)
                .count();
        agent.kill();
        agent = node.startServing(config, jvmOptions, SimulatedAgentNode.START_TIMEOUT);
        SimulatedAgentNode.awaitAdvertised(kubelet, gpus);
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (dra.events().stream()
                                .filter(DraKubeletSimulator.RegistrationEvent::registered)
                                .count()
                        <= registeredBefore
                && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        dra.awaitPlugin(DRIVER, Duration.ofSeconds(1));
        if (dra.events().stream()
                        .filter(DraKubeletSimulator.RegistrationEvent::registered)
                        .count()
                <= registeredBefore) {
            throw new AssertionError("the restarted agent did not register with kubelet again; events: " + dra.events()
                    + "\nagent log:\n" + agent.log());
        }
        return agent;
    }

    /**
     * A claim made from one of the component's example templates ({@code examples/<file>}), as the claim
     * controller makes one for a pod; the tenant toleration, if the template has one, names {@code tenant}.
     */
    ResourceClaim createClaimFromExample(String file, String namespace, String name, String tenant) {
        ResourceClaimTemplate template =
                manifest(COMPONENT.resolve("examples").resolve(file), ResourceClaimTemplate.class);
        ResourceClaim claim = new ResourceClaimBuilder()
                .withNewMetadata()
                .withName(name)
                .withNamespace(namespace)
                .endMetadata()
                .withSpec(template.getSpec().getSpec())
                .build();
        claim.getSpec().getDevices().getRequests().forEach(request -> {
            if (request.getExactly().getTolerations() != null) {
                request.getExactly().getTolerations().forEach(toleration -> toleration.setValue(tenant));
            }
        });
        return kube.resources(ResourceClaim.class)
                .inNamespace(namespace)
                .resource(claim)
                .create();
    }

    /** The 250 milli / 20 GiB share of the example template, for {@code pod}'s tenant, allocated as the scheduler would. */
    ResourceClaim allocatedShare(Pod pod, String claimName, String tenant) {
        createClaimFromExample(
                "resourceclaimtemplate-share.yaml", pod.getMetadata().getNamespace(), claimName, tenant);
        return allocator.allocate(pod.getMetadata().getNamespace(), claimName, pod);
    }

    static String device(ResourceClaim claim) {
        List<DeviceRequestAllocationResult> results =
                claim.getStatus().getAllocation().getDevices().getResults();
        return results.getFirst().getDevice();
    }

    /** What the container runtime applies for a prepared claim: its CDI devices resolved against the CDI dir. */
    ContainerEdits edits(ClaimResult prepared) {
        return CdiRegistry.scan(node.paths().cdiDir()).resolve(prepared.cdiDeviceIdsFor("gpu"));
    }

    /** Runs {@code command} as a container with {@code edits} (in a mount namespace where root allows). */
    SimNode.Run run(ContainerEdits edits, Path scratch, String... command) {
        ContainerLauncher launcher = new ContainerLauncher(scratch);
        Map<String, String> runtimeEnv = new HashMap<>(node.sim().env());
        runtimeEnv.put("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        ContainerLauncher.Isolation isolation =
                ContainerLauncher.mountNamespaceUnavailable().isEmpty()
                        ? ContainerLauncher.Isolation.MOUNT_NAMESPACE
                        : ContainerLauncher.Isolation.HOST_PATHS;
        ContainerLauncher.Launch launch = launcher.prepare(edits, isolation, runtimeEnv, List.of(command));
        return Programs.run(launch.process(), Duration.ofSeconds(60));
    }

    /** The CDI spec files the agent has written now. */
    List<Path> cdiSpecs() {
        Path dir = node.paths().cdiDir();
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(f -> f.toString().endsWith(".json")).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static <T> T manifest(Path file, Class<T> type) {
        try (InputStream in = Files.newInputStream(file)) {
            return Serialization.unmarshal(in, type);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
    }

    private static Path repositoryRoot() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isRegularFile(dir.resolve("daemonset/kustomization.yaml"))) {
                return dir;
            }
        }
        throw new IllegalStateException(
                "no daemonset/kustomization.yaml above " + Path.of("").toAbsolutePath());
    }

    @Override
    public void close() {
        try {
            dra.close();
            node.close();
        } finally {
            kube.close();
            api.destroy();
        }
    }
}
