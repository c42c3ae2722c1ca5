package io.omai.harness.simulate;

import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.node.NodeAgent;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.harness.kubelet.KubeletSimulator;
import io.omai.harness.launcher.ContainerLauncher;
import io.omai.harness.sim.SimNode;
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
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Everything a simulated node runs, in one process: simulated GPUs, a fake sysfs with one InfiniBand HCA and its
 * VFs, a kubelet simulator, the agent itself (device plugin, ledger, compute controller, reaper), and the sample
 * pods' workloads as real processes under the real shim. Closing it stops all of it.
 */
final class SimulatedNode implements AutoCloseable {
    static final String RESOURCE = "omai.io/milli-gpu";
    static final String VF_RESOURCE = "omai.io/ib-vf";
    static final String GUID_RANGE = "02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff";
    static final long GPU_MEMORY = 80L << 30;
    static final int DESIRED_VFS = 4;

    private final Path root;
    private final SimNode sim;
    private final KubeletSimulator kubelet;
    private final NodeAgent agent;
    private final IbVfMonitor vfMonitor;
    private final FakeSysfs sysfs;
    private final Map<String, AllocationFiles> openFiles = new HashMap<>();
    private final List<RunningPod> pods = new ArrayList<>();
    private final int metricsPort;

    /** A sample pod, its allocation, the VFs it holds and its workload process. */
    record RunningPod(SamplePod spec, String allocationId, List<String> gpuUuids, List<String> vfs, Process process,
                      Path log) {}

    SimulatedNode(Path root, int metricsPort, int schedulerApiPort) throws Exception {
        this.root = root;
        this.metricsPort = metricsPort;
        this.sim = SimNode.create(root.resolve("sim"), List.of(SimNode.Gpu.h100(0, GPU_MEMORY),
                SimNode.Gpu.h100(1, GPU_MEMORY)));
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
        IbVfManager vfs = new IbVfManager(new IbVfManagerConfig("sim-node", GuidRange.parse(GUID_RANGE),
                VfLinkState.AUTO, new ReadinessPolicy(3, Duration.ZERO)),
                kernel, kernel, new FileGuidStore(root.resolve("state/ib-vf-guids")),
                new NodeRebindLock(root.resolve("ib/lock")), duration -> { });
        vfs.reconcile(hca.address(), DESIRED_VFS);
        this.vfMonitor = vfs.newMonitor();
        vfMonitor.poll();

        Path devicePlugins = Files.createDirectories(root.resolve("device-plugins"));
        Path podResources = root.resolve("pod-resources/kubelet.sock");
        this.kubelet = KubeletSimulator.start(devicePlugins, podResources);
        AgentConfig config = ConfigLoader.parse("simulate", """
                version: 1
                nodeName: sim-node
                directories:
                  devicePlugin: %s
                  podResourcesSocket: %s
                  state: %s
                shim:
                  hostLibrary: %s
                nvml:
                  library: %s
                  recoveryDebounce: 2s
                kubelet:
                  registrationBackoffMax: 1s
                  reconcileInterval: 1s
                  releaseGracePeriod: 5s
                metrics:
                  address: 127.0.0.1
                  port: %d
                schedulerApi:
                  address: 127.0.0.1
                  port: %d
                  deviceLabels:
                    - select: all
                      attributes: {class: train}
                      tags: [simulated]
                ib:
                  enabled: true
                  sysfsRoot: %s
                  guidRange: %s
                  desiredVfs: %d
                  pollInterval: 1s
                  rebindLock: %s
                """.formatted(devicePlugins, podResources, root.resolve("state"),
                sim.buildDir().resolve("lib/libomai-shim.so"), sim.buildDir().resolve("sim/libnvidia-ml.so.1"),
                metricsPort, schedulerApiPort, root.resolve("sys"), GUID_RANGE, DESIRED_VFS, root.resolve("ib/lock")));
        this.agent = NodeAgent.start(config);
        kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
        kubelet.awaitDevices(RESOURCE, devices -> devices.size() == 2000, Duration.ofSeconds(30));
        kubelet.awaitRegistration(VF_RESOURCE, Duration.ofSeconds(30));
        kubelet.awaitDevices(VF_RESOURCE, devices -> devices.size() == DESIRED_VFS, Duration.ofSeconds(30));

        // The agent runs the compute controller and the reaper itself; the table reads what they write.
    }

    /** Admits the pod through the kubelet simulator and starts its workload under the shim. */
    RunningPod admit(SamplePod pod, Duration runFor) throws IOException {
        KubeletSimulator.Admission admission =
                kubelet.admit(pod.namespace(), pod.pod(), pod.container(), RESOURCE, pod.milli());
        String allocationId = admission.response().getEnvsMap().getOrDefault("OMAI_ALLOCATION_ID", "");
        Allocation allocation = agent.ledger().allocation(allocationId).orElseThrow(() -> new IllegalStateException(
                "the agent has no allocation " + allocationId + " for " + pod.name()));
        // The workload only uses the GPU; the VFs' device nodes exist in the fake sysfs, not in /dev.
        List<String> vfIds = pod.ibVfs() == 0 ? List.of()
                : kubelet.admit(pod.namespace(), pod.pod(), pod.container(), VF_RESOURCE, pod.ibVfs()).deviceIds();
        Map<String, String> runtimeEnv = new LinkedHashMap<>(sim.env());
        runtimeEnv.put("PATH", System.getenv().getOrDefault("PATH", "/usr/bin:/bin"));
        List<String> command = List.of(sim.program("omai-workload").toString(),
                "alloc", "alloc", Long.toString(pod.memoryBytes()),
                "duty", "kernel", Long.toString(Math.max(1, runFor.toSeconds())), Integer.toString(pod.dutyPercent()),
                "20");
        ContainerLauncher.Launch launch = new ContainerLauncher(Files.createDirectories(root.resolve("containers")))
                .prepare(admission.response(), ContainerLauncher.Isolation.HOST_PATHS, runtimeEnv, command);
        Path log = root.resolve("containers/" + pod.namespace() + "_" + pod.pod() + ".log");
        Process process = launch.process().redirectErrorStream(true).redirectOutput(log.toFile()).start();
        RunningPod running = new RunningPod(pod, allocationId, allocation.gpuUuids(), vfIds, process, log);
        synchronized (pods) {
            pods.add(running);
        }
        return running;
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
        return metricsPort;
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
        agent.close();
        kubelet.close();
        synchronized (this) {
            openFiles.values().forEach(AllocationFiles::close);
            openFiles.clear();
        }
    }
}
