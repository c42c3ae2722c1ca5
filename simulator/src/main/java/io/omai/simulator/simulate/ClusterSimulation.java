package io.omai.simulator.simulate;

import io.omai.agent.schedapi.v1.GpuState;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.extender.ExtenderSettings;
import io.omai.extender.SchedulerExtender;
import io.omai.extender.config.AgentConnection;
import io.omai.simulator.cluster.ClusterNode;
import io.omai.simulator.cluster.ClusterPod;
import io.omai.simulator.cluster.KubeSchedulerDriver;
import io.omai.simulator.cluster.PodStreamRun;
import io.omai.simulator.cluster.SimulatedCluster;
import io.omai.simulator.launcher.AgentJvm;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@code simulate --nodes N}: a small simulated cluster (N agent JVMs, one HCA with VFs each, one in-process API
 * server), the scheduler extender in this process, and kube-scheduler's side ({@link KubeSchedulerDriver})
 * placing a seeded stream of sample pods from three tenants; every bound pod is admitted by its node's kubelet
 * simulator. The table shows each node's GPUs as the agents report them and where each pod went.
 */
final class ClusterSimulation implements AutoCloseable {
    private final SimulatedCluster cluster;
    private final SchedulerExtender extender;
    private final List<PodStreamRun.Placement> placements = Collections.synchronizedList(new ArrayList<>());
    private final AtomicReference<String> summary = new AtomicReference<>("placing pods...");
    private final Thread placer;

    private ClusterSimulation(SimulatedCluster cluster, SchedulerExtender extender, int pods, long seed) {
        this.cluster = cluster;
        this.extender = extender;
        KubeSchedulerDriver scheduler =
                new KubeSchedulerDriver(cluster.client(), URI.create("http://127.0.0.1:" + extender.port()), 1, seed);
        this.placer = Thread.ofPlatform().name("simulate-placer").daemon().unstarted(() -> {
            try {
                PodStreamRun.Result result = new PodStreamRun(cluster, List.of(scheduler), placements::add)
                        .run(ClusterPod.stream(seed, pods));
                summary.set(result.summary());
            } catch (Exception e) {
                summary.set("placing pods failed: " + e);
            }
        });
    }

    /** Starts the cluster and the extender, waits until the extender knows every node, starts placing pods. */
    static ClusterSimulation start(Path root, int nodes, int pods, long seed) {
        SimulatedCluster cluster =
                SimulatedCluster.start(root, SimulatedCluster.Options.of(nodes, AgentJvm.QUICK_START));
        SchedulerExtender extender = null;
        try {
            extender = SchedulerExtender.start(ExtenderSettings.of(
                    0,
                    cluster.client(),
                    AgentConnection.of(
                                    SimulatedCluster.AGENT_NAMESPACE,
                                    SimulatedCluster.AGENT_SERVICE,
                                    cluster.schedulerApiPort())
                            .withTokenFile(cluster.tokenFile())));
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!(extender.ready() && extender.cache().nodeNames().size() == nodes)) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("the extender did not see all " + nodes + " agents within 60 s; "
                            + "it knows " + extender.cache().nodeNames());
                }
                Thread.sleep(100);
            }
            ClusterSimulation simulation = new ClusterSimulation(cluster, extender, pods, seed);
            simulation.placer.start();
            return simulation;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            closeQuietly(extender, cluster);
            throw new IllegalStateException("interrupted while starting the simulated cluster", e);
        } catch (RuntimeException e) {
            closeQuietly(extender, cluster);
            throw e;
        }
    }

    private static void closeQuietly(SchedulerExtender extender, SimulatedCluster cluster) {
        if (extender != null) {
            extender.close();
        }
        cluster.close();
    }

    String apiUrl() {
        return cluster.apiUrl();
    }

    int extenderPort() {
        return extender.port();
    }

    /** The table: every node's GPUs as its agent reports them, then every pod placed so far. */
    String render(long elapsedMillis) {
        StringBuilder out = new StringBuilder();
        out.append(String.format(
                Locale.ROOT,
                "OMAI simulated cluster  t=%5.1fs  %d nodes  API %s  extender http://127.0.0.1:%d%n",
                elapsedMillis / 1000.0,
                cluster.nodes().size(),
                cluster.apiUrl(),
                extender.port()));
        out.append(String.format(
                Locale.ROOT,
                "%n%-7s %-3s %-10s %-9s %-9s %s%n",
                "NODE",
                "GPU",
                "CLASS",
                "MILLI",
                "RESERVED",
                "TENANTS (agent's)"));
        for (ClusterNode node : cluster.nodes()) {
            NodeState state;
            try {
                state = node.state();
            } catch (RuntimeException e) {
                out.append(node.name())
                        .append(": scheduler API not answering: ")
                        .append(e.getMessage())
                        .append('\n');
                continue;
            }
            for (GpuState gpu : state.getGpusList()) {
                out.append(String.format(
                        Locale.ROOT,
                        "%-7s %-3d %-10s %4d/%4d %9d %s%n",
                        node.name(),
                        gpu.getIndex(),
                        gpu.getAttributesMap().getOrDefault("class", "-"),
                        gpu.getMilliAllocated(),
                        gpu.getMilliCapacity(),
                        gpu.getMilliReserved(),
                        gpu.getTenantsCount() == 0 ? "-" : String.join(",", gpu.getTenantsList())));
            }
        }
        out.append(String.format(
                Locale.ROOT, "%n%-13s %-7s %5s %3s %-7s %s%n", "POD", "TENANT", "MILLI", "VF", "NODE", "OUTCOME"));
        List<PodStreamRun.Placement> sofar;
        synchronized (placements) {
            sofar = List.copyOf(placements);
        }
        for (PodStreamRun.Placement placement : sofar) {
            String outcome = placement.outcome();
            out.append(String.format(
                    Locale.ROOT,
                    "%-13s %-7s %5d %3d %-7s %s%n",
                    placement.pod().name(),
                    placement.pod().tenant(),
                    placement.pod().milli(),
                    placement.pod().vfs(),
                    placement.node().orElse("-"),
                    outcome.length() > 100 ? outcome.substring(0, 100) + "..." : outcome));
        }
        out.append('\n').append(summary.get()).append('\n');
        return out.toString();
    }

    /** Whether every pod of the stream has been placed or found unschedulable. */
    boolean done() {
        return !placer.isAlive();
    }

    @Override
    public void close() {
        placer.interrupt();
        closeQuietly(extender, cluster);
    }
}
