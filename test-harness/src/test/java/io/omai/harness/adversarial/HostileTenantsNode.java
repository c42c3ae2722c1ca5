package io.omai.harness.adversarial;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.MonotonicClock;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.launcher.ContainerLauncher;
import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * One simulated node under attack ({@link SimulatedAgentNode}: two simulated GPUs, the kubelet simulator, the agent
 * as its own JVM) with the NVML audit set to kill, and containers started from the agent's Allocate responses in
 * private mount namespaces with the real shim. Tenants' workloads run as root or as {@code nobody}, so the test tree is world-traversable
 * (0755) and the simulator's state world-writable: what keeps host users out of allocation files must be the
 * agent's own modes.
 */
final class HostileTenantsNode implements AutoCloseable {
    static final String RESOURCE = "omai.io/milli-gpu";
    static final long GPU_MEMORY = 16L << 30;

    final Path root;
    final SimNode sim;
    final KubeletSimulator kubelet;
    final AgentJvm agent;
    final Duration auditInterval;
    final int metricsPort;
    private final ContainerLauncher launcher;
    private final SimulatedAgentNode node;
    private final List<Container> containers = new ArrayList<>();
    private final HttpClient http = HttpClient.newHttpClient();

    HostileTenantsNode(Path root, Duration auditInterval) throws IOException {
        this.root = root;
        this.auditInterval = auditInterval;
        Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxr-xr-x"));
        this.node = SimulatedAgentNode.create(root, 2, GPU_MEMORY);
        this.sim = node.sim();
        this.metricsPort = SimulatedAgentNode.freePort();
        Path config = node.yaml("hostile-node")
                .quickKubelet(Duration.ofMillis(300), Duration.ofSeconds(2))
                .set("tenancy.audit", "kill")
                .set("tenancy.auditInterval", auditInterval)
                .metrics(metricsPort)
                .schedulerApi(SimulatedAgentNode.freePort())
                .writeTo(root.resolve("agent.yaml"));
        this.kubelet = node.startKubelet();
        this.agent = node.boot(config, AgentJvm.QUICK_START);
        // the simulator's shared state, for workloads of any uid (the agent made it as root)
        try (Stream<Path> files = Files.walk(root.resolve("sim"))) {
            for (Path file : files.toList()) {
                Files.setPosixFilePermissions(
                        file, PosixFilePermissions.fromString(Files.isDirectory(file) ? "rwxrwxrwx" : "rw-rw-rw-"));
            }
        }
        for (Path dir : List.of(root.resolve("state"), root.resolve("state/allocations"))) {
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
        this.launcher = new ContainerLauncher(Files.createDirectories(root.resolve("launcher")));
    }

    /**
     * A pod's container admitted by kubelet with a share of one GPU, once the agent has learned from PodResources
     * whose it is (Allocate itself names no pod; until then a finding can name only the allocation).
     */
    KubeletSimulator.Admission admit(String namespace, String pod, int milli) {
        KubeletSimulator.Admission admission = kubelet.admit(namespace, pod, "main", RESOURCE, milli);
        agent.awaitLog("event=allocation_owner allocation=" + allocationId(admission), Duration.ofSeconds(15));
        return admission;
    }

    static String allocationId(KubeletSimulator.Admission admission) {
        return admission.response().getEnvsMap().get("OMAI_ALLOCATION_ID");
    }

    Path allocationDir(KubeletSimulator.Admission admission) {
        return root.resolve("state/allocations").resolve(allocationId(admission));
    }

    /** Starts {@code command} as the container holding {@code admission} (mount namespace, shim preloaded). */
    Container start(KubeletSimulator.Admission admission, List<String> command) {
        Map<String, String> runtimeEnv = new HashMap<>(sim.env());
        runtimeEnv.put("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        ContainerLauncher.Launch launch = launcher.prepare(
                admission.response(), ContainerLauncher.Isolation.MOUNT_NAMESPACE, runtimeEnv, command);
        Container container = Container.start(launch.process());
        containers.add(container);
        return container;
    }

    String workload() {
        return sim.program("omai-workload").toString();
    }

    /** The agent's heartbeat age and grant of an allocation's first GPU, as its control file shows them now. */
    record Liveness(long heartbeatAgeNanos, long grantNs) {}

    Liveness liveness(KubeletSimulator.Admission admission) {
        try (AllocationFiles files = AllocationFiles.openReadOnly(allocationDir(admission))) {
            ControlSnapshot control = files.control().read();
            return new Liveness(
                    MonotonicClock.nanos() - control.heartbeatNs(),
                    control.devices().get(0).tokenGrantNs());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The other tenant is untouched: heartbeats younger than 2 s, its grant still growing, /metrics answering. */
    void assertUnharmed(KubeletSimulator.Admission bystander) throws Exception {
        Liveness before = liveness(bystander);
        assertThat(before.heartbeatAgeNanos())
                .as("heartbeat age of the other tenant")
                .isLessThan(2_000_000_000L);
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        Liveness after = liveness(bystander);
        while (after.grantNs() <= before.grantNs() && System.nanoTime() < deadline) {
            Thread.sleep(100);
            after = liveness(bystander);
        }
        assertThat(after.grantNs()).as("the other tenant's grant keeps growing").isGreaterThan(before.grantNs());
        assertThat(after.heartbeatAgeNanos()).isLessThan(2_000_000_000L);
        assertThat(scrape()).contains("omai_allocation_memory_limit_bytes");
    }

    /** The agent's audit log lines so far (what a failed assertion should show, not the whole log). */
    String auditLog() {
        return String.join(
                "\n",
                agent.log()
                        .lines()
                        .filter(line -> line.contains("event=audit_"))
                        .toList());
    }

    String scrape() throws IOException, InterruptedException {
        HttpResponse<String> response = http.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + metricsPort + "/metrics"))
                        .timeout(Duration.ofSeconds(10))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).as("/metrics answers").isEqualTo(200);
        return response.body();
    }

    @Override
    public void close() {
        for (Container container : containers) {
            container.close();
        }
        http.close();
        node.close();
    }
}
