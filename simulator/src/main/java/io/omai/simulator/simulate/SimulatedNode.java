package io.omai.simulator.simulate;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.fabric8.kubernetes.api.model.ContainerBuilder;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.mockwebserver.Context;
import io.fabric8.mockwebserver.MockWebServer;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.nvml.FfmNvmlLibrary;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.metrics.AgentMetrics;
import io.omai.agent.metrics.MetricsServer;
import io.omai.agent.metrics.NodeAgentSources;
import io.omai.agent.metrics.TenantLookup;
import io.omai.agent.node.NodeAgent;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.IbVfManagerConfig;
import io.omai.ibvf.config.NodeRebindLock;
import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.guid.FileGuidStore;
import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.inventory.IbVfMonitor;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import io.omai.simulator.kubeapi.ClusterCrudDispatcher;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.ContainerLauncher;
import io.omai.simulator.node.AgentYaml;
import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.node.SimulatedNodePaths;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Everything a simulated node runs, in one process: simulated GPUs, a fake sysfs with one InfiniBand HCA and its
 * VFs, a kubelet simulator, a Kubernetes API server (fabric8's mock server in CRUD mode) holding the node and its
 * pods, the agent itself (device plugin, ledger, compute controller, reaper, pod informer) with its metrics server,
 * and the sample pods' workloads as real processes under the real shim. Closing it stops all of it.
 */
final class SimulatedNode implements AutoCloseable {
    static final String NODE = "sim-node";
    static final String RESOURCE = "omai.io/milli-gpu";
    static final String VF_RESOURCE = "omai.io/ib-vf";
    static final String GUID_RANGE = "02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff";
    static final long GPU_MEMORY = 80L << 30;
    static final int DESIRED_VFS = 4;
    /** Held here: java.util.logging keeps loggers weakly, and a collected one would forget its level. */
    private static final Logger MOCK_SERVER_LOG = Logger.getLogger("io.fabric8.mockwebserver");

    private final Path root;
    private final SimNode sim;
    private final KubeletSimulator kubelet;
    private final NodeAgent agent;
    private final IbVfMonitor vfMonitor;
    private final FakeSysfs sysfs;
    private final KubernetesMockServer kubeApi;
    private final KubernetesClient kube;
    private final AgentMetrics metrics;
    private final MetricsServer metricsServer;

    @GuardedBy("this")
    private final Map<String, AllocationFiles> openFiles = new HashMap<>();

    @GuardedBy("pods")
    private final List<RunningPod> pods = new ArrayList<>();

    /**
     * A sample pod, its allocation, the tenant the agent identified it as, the VFs it holds and its workload
     * process.
     */
    record RunningPod(
            SamplePod spec,
            String allocationId,
            String tenant,
            List<String> gpuUuids,
            List<String> vfs,
            Process process,
            Path log) {}

    SimulatedNode(Path root, int metricsPort, int schedulerApiPort) throws Exception {
        this.root = root;
        this.sim = SimNode.create(
                root.resolve("sim"), List.of(SimNode.Gpu.h100(0, GPU_MEMORY), SimNode.Gpu.h100(1, GPU_MEMORY)));
        // The agent's NVML is the simulated one, loaded into this JVM: it must see the same GPUs.
        sim.env().forEach((name, value) -> {
            if (name.startsWith("OMAI_SIM_")) {
                NativeEnvironment.set(name, value);
            }
        });

        this.sysfs = FakeSysfs.create(root.resolve("sys"));
        FakePf hca = sysfs.connectX6Ib(0, 8);
        FakeKernel kernel = new FakeKernel(sysfs);
        // The fake kernel creates the VFs and sets their GUIDs, as provisioning would; the agent's own reconcile
        // (same node, range and GUID file) then finds them as desired and only advertises them.
        Files.createDirectories(root.resolve("state"));
        IbVfManager vfs = new IbVfManager(
                new IbVfManagerConfig(
                        "sim-node",
                        GuidRange.parse(GUID_RANGE),
                        VfLinkState.AUTO,
                        new ReadinessPolicy(3, Duration.ZERO)),
                kernel,
                kernel,
                new FileGuidStore(root.resolve("state/ib-vf-guids")),
                new NodeRebindLock(root.resolve("ib/lock")),
                duration -> {});
        vfs.reconcile(hca.address(), DESIRED_VFS);
        this.vfMonitor = vfs.newMonitor();
        vfMonitor.poll();

        // The Kubernetes API the agent's informer lists and watches, as on a real node: the agent builds its client
        // from its usual configuration sources, here system properties naming this server (and never a kubeconfig
        // or service account of the machine it runs on).
        MOCK_SERVER_LOG.setLevel(Level.WARNING); // one INFO line per request would tear through the table
        this.kubeApi = new KubernetesMockServer(
                new Context(), new MockWebServer(), new HashMap<>(), new ClusterCrudDispatcher(), false);
        kubeApi.init(InetAddress.getLoopbackAddress(), 0);
        System.setProperty("kubernetes.master", "http://127.0.0.1:" + kubeApi.getPort());
        System.setProperty("kubernetes.auth.tryKubeConfig", "false");
        System.setProperty("kubernetes.auth.tryServiceAccount", "false");
        System.setProperty("kubernetes.namespace", "default");
        this.kube = kubeApi.createClient();
        kube.nodes()
                .resource(new NodeBuilder()
                        .withNewMetadata()
                        .withName(NODE)
                        .endMetadata()
                        .build())
                .create();

        SimulatedNodePaths paths = SimulatedNodePaths.under(root, sim);
        this.kubelet = KubeletSimulator.start(paths.devicePlugins(), paths.podResourcesSocket());
        AgentConfig config = ConfigLoader.parse(
                "simulate",
                AgentYaml.forNode(NODE, paths)
                        .set("nvml.recoveryDebounce", "2s")
                        .quickKubelet(Duration.ofSeconds(1), Duration.ofSeconds(5))
                        .metrics(metricsPort)
                        .schedulerApi(schedulerApiPort)
                        // a development sandbox on the loopback: any local client may Reserve (logged as a warning)
                        .reserveAuth("none")
                        .set(
                                "schedulerApi.deviceLabels",
                                "\n    - select: all\n      attributes: {class: train}\n      tags: [simulated]")
                        .set("ib.enabled", "true")
                        .set("ib.sysfsRoot", root.resolve("sys"))
                        .set("ib.guidRange", GUID_RANGE)
                        .set("ib.desiredVfs", DESIRED_VFS)
                        .set("ib.pollInterval", "1s")
                        .set("ib.rebindLock", root.resolve("ib/lock"))
                        .set("tenancy.kubernetesApi", "on")
                        .set("tenancy.identifyWait", "5s")
                        .text());
        // As run does: probes answer from the start, the agent's plugin calls are timed, its sources bound.
        this.metrics = AgentMetrics.create(config.nodeName());
        this.metricsServer = MetricsServer.start(config.metrics(), metrics);
        try {
            this.agent = NodeAgent.start(config, metrics.rpcLatency());
        } catch (Exception e) {
            metricsServer.close();
            metrics.close();
            kubelet.close();
            kube.close();
            kubeApi.destroy();
            throw e;
        }
        // Tenants come from the allocations' claims, i.e. the pods the agent's informer identified at Allocate;
        // the VF series are bound with the rest.
        NodeAgentSources.bind(metrics, agent, FfmNvmlLibrary.instance(), TenantLookup.UNKNOWN);
        metrics.health().markStarted();
        SimulatedAgentNode.awaitAdvertised(kubelet, sim.gpus().size());
        kubelet.awaitRegistration(VF_RESOURCE, Duration.ofSeconds(30));
        kubelet.awaitDevices(VF_RESOURCE, devices -> devices.size() == DESIRED_VFS, Duration.ofSeconds(30));

        // The agent runs the compute controller and the reaper itself; the table reads what they write.
    }

    /**
     * Creates the pod in the Kubernetes API (bound to this node, pending, its container asking for the share),
     * admits it through the kubelet simulator, which the agent answers only for a pod its informer identified,
     * marks it running and starts its workload under the shim.
     */
    RunningPod admit(SamplePod pod, Duration runFor) throws IOException {
        kube.pods().inNamespace(pod.namespace()).resource(apiPod(pod)).create();
        KubeletSimulator.Admission admission =
                kubelet.admit(pod.namespace(), pod.pod(), pod.container(), RESOURCE, pod.milli());
        String allocationId = admission.response().getEnvsMap().getOrDefault("OMAI_ALLOCATION_ID", "");
        Allocation allocation = agent.ledger()
                .allocation(allocationId)
                .orElseThrow(() -> new IllegalStateException(
                        "the agent has no allocation " + allocationId + " for " + pod.name()));
        if (!allocation.claim().tenantKnown()) {
            throw new IllegalStateException("the agent allocated " + allocationId + " for " + pod.name()
                    + " without identifying the pod (claim " + allocation.claim() + ")");
        }
        // The workload only uses the GPU; the VFs' device nodes exist in the fake sysfs, not in /dev.
        List<String> vfIds = pod.ibVfs() == 0
                ? List.of()
                : kubelet.admit(pod.namespace(), pod.pod(), pod.container(), VF_RESOURCE, pod.ibVfs())
                        .deviceIds();
        Map<String, String> runtimeEnv = new LinkedHashMap<>(sim.env());
        runtimeEnv.put("PATH", System.getenv().getOrDefault("PATH", "/usr/bin:/bin"));
        List<String> command = List.of(
                sim.program("omai-workload").toString(),
                "alloc",
                "alloc",
                Long.toString(pod.memoryBytes()),
                "duty",
                "kernel",
                Long.toString(Math.max(1, runFor.toSeconds())),
                Integer.toString(pod.dutyPercent()),
                "20");
        ContainerLauncher.Launch launch = new ContainerLauncher(Files.createDirectories(root.resolve("containers")))
                .prepare(admission.response(), ContainerLauncher.Isolation.HOST_PATHS, runtimeEnv, command);
        Path log = root.resolve("containers/" + pod.namespace() + "_" + pod.pod() + ".log");
        Process process = launch.process()
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        // kubelet starts the containers once every device is allocated; the pod is no longer pending
        kube.pods()
                .inNamespace(pod.namespace())
                .withName(pod.pod())
                .editStatus(p -> new PodBuilder(p)
                        .editStatus()
                        .withPhase("Running")
                        .endStatus()
                        .build());
        RunningPod running =
                new RunningPod(pod, allocationId, allocation.tenant(), allocation.gpuUuids(), vfIds, process, log);
        synchronized (pods) {
            pods.add(running);
        }
        return running;
    }

    /** The pod as a scheduler leaves it for kubelet: bound to this node, pending, its share as a limit. */
    private static Pod apiPod(SamplePod pod) {
        return new PodBuilder()
                .withNewMetadata()
                .withNamespace(pod.namespace())
                .withName(pod.pod())
                .withLabels(pod.labels())
                .endMetadata()
                .withNewSpec()
                .withNodeName(NODE)
                .addToContainers(new ContainerBuilder()
                        .withName(pod.container())
                        .withImage("omai-workload")
                        .withNewResources()
                        .addToLimits(RESOURCE, new Quantity(Integer.toString(pod.milli())))
                        .endResources()
                        .build())
                .endSpec()
                .withNewStatus()
                .withPhase("Pending")
                .endStatus()
                .build();
    }

    List<RunningPod> pods() {
        synchronized (pods) {
            return List.copyOf(pods);
        }
    }

    NodeAgent agent() {
        return agent;
    }

    SimNode sim() {
        return sim;
    }

    IbVfMonitor vfMonitor() {
        return vfMonitor;
    }

    FakeSysfs sysfs() {
        return sysfs;
    }

    int metricsPort() {
        return metricsServer.port();
    }

    /** Where the agent keeps each allocation's files ({@code omai-agent inspect DIR/ALLOCATION}). */
    Path allocationsDirectory() {
        return root.resolve("state/allocations");
    }

    /** The URL of the in-process Kubernetes API server. */
    String kubernetesApi() {
        return "http://127.0.0.1:" + kubeApi.getPort();
    }

    int schedulerApiPort() {
        return agent.schedulerApiPort();
    }

    /** The allocation's files, opened once and kept for the table. */
    synchronized Optional<AllocationFiles> files(String allocationId) {
        AllocationFiles files = openFiles.get(allocationId);
        if (files != null) {
            return Optional.of(files);
        }
        AllocationLedger ledger = agent.ledger();
        Optional<Allocation> allocation = ledger.allocation(allocationId);
        if (allocation.isEmpty()) {
            return Optional.empty();
        }
        try {
            files = AllocationFiles.open(ledger.directory(allocation.get()));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        openFiles.put(allocationId, files);
        return Optional.of(files);
    }

    @Override
    public void close() {
        for (RunningPod pod : pods()) {
            pod.process().destroy();
        }
        for (RunningPod pod : pods()) {
            try {
                if (!pod.process().waitFor(5, java.util.concurrent.TimeUnit.SECONDS)) {
                    pod.process().destroyForcibly();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                pod.process().destroyForcibly();
            }
        }
        metrics.health().markStopping();
        agent.close();
        metricsServer.close();
        metrics.close();
        kubelet.close();
        kube.close();
        kubeApi.destroy();
        synchronized (this) {
            openFiles.values().forEach(AllocationFiles::close);
            openFiles.clear();
        }
    }
}
