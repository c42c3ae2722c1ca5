package io.omai.harness.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.client.KubernetesClient;
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
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The cluster end to end: four agent JVMs on simulated nodes (2, 4, 4 and 3 GPUs, an HCA with 4 VFs each), two
 * replicas of the scheduler extender discovering them through the agents' EndpointSlice, one fabric8 mock API
 * server, and kube-scheduler's side played by {@link KubeSchedulerDriver} (filter, prioritize, bind over the
 * extender's HTTP protocol); every bound pod is admitted by its node's kubelet simulator. Everything judged is read
 * back from the agents (GetNodeState), not from the driver's bookkeeping.
 *
 * <p>First the lost race: two scheduling loops, each with its own extender replica, bind 12 pods of 250 milli
 * onto node-1's two GPUs at once (a selector keeps them there), before its kubelet admits any (one tenant: the
 * agent refuses to guess between pods of different tenants pending with the same size, docs/tenancy.md); then a seeded stream of pods from three tenants
 * (250/500/1000 milli, 2-GPU whole pods, some with a VF, some with a selector) fills the other three nodes.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ClusterEndToEndTest {
    private static final long SEED = 15;

    @TempDir
    static Path dir;

    private static SimulatedCluster cluster;
    private static final List<SchedulerExtender> extenders = new ArrayList<>();
    private static final List<KubernetesClient> clients = new ArrayList<>();

    @BeforeAll
    static void start() {
        cluster = SimulatedCluster.start(
                dir, new SimulatedCluster.Options(List.of(2, 4, 4, 3), 4, 3, Map.of(), AgentJvm.QUICK_START));
        for (int replica = 0; replica < 2; replica++) {
            KubernetesClient client = cluster.newClient();
            clients.add(client);
            extenders.add(SchedulerExtender.start(ExtenderSettings.of(
                            0,
                            client,
                            AgentConnection.of(
                                            SimulatedCluster.AGENT_NAMESPACE,
                                            SimulatedCluster.AGENT_SERVICE,
                                            cluster.schedulerApiPort())
                                    .withTokenFile(cluster.tokenFile()))
                    .withScoring(io.omai.extender.config.ScoringPolicy.DEFAULT)));
        }
        await().atMost(Duration.ofSeconds(30))
                .until(() -> extenders.stream()
                        .allMatch(e -> e.ready()
                                && e.cache().nodeNames().size()
                                        == cluster.nodes().size()));
    }

    @AfterAll
    static void stop() {
        extenders.forEach(SchedulerExtender::close);
        clients.forEach(KubernetesClient::close);
        if (cluster != null) {
            cluster.close();
        }
    }

    private static KubeSchedulerDriver driver(int replica) {
        return new KubeSchedulerDriver(
                cluster.client(),
                URI.create("http://127.0.0.1:" + extenders.get(replica).port()),
                1,
                SEED + replica);
    }

    @Test
    @Order(1)
    void twoExtenderReplicasBindingConcurrentlyNeverOverCommit() throws Exception {
        List<ClusterPod> pods = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            pods.add(new ClusterPod(
                    "team-a",
                    "race-" + i,
                    250,
                    0,
                    Optional.empty(),
                    Optional.of("device.attributes[\"node\"] == \"node-1\""),
                    0));
        }

        PodStreamRun.Result result = new PodStreamRun(cluster, List.of(driver(0), driver(1)), placement -> {})
                .measuring(Set.of("node-1"))
                .deferringAdmission()
                .run(pods);
        System.out.println(result.summary().replace("cluster_result", "cluster_race_result"));

        assertThat(result.admissionFailures()).isEmpty();
        assertThat(result.coLocations()).isEmpty();
        assertThat(result.overCommits()).isEmpty();
        NodeState node1 = cluster.node("node-1").state();
        assertThat(node1.getGpusList())
                .allSatisfy(gpu -> assertThat(gpu.getMilliAllocated()).isEqualTo(1000));
        assertThat(result.admitted()).isEqualTo(8);
        assertThat(result.unschedulable()).isEqualTo(4);
        assertThat(node1.getReservationsList()).isEmpty();
    }

    @Test
    @Order(2)
    void aStreamOfThreeTenantsIsPackedAndAdmittedWithoutFailuresOrCoLocation() throws Exception {
        Set<String> streamNodes = Set.of("node-2", "node-3", "node-4");
        List<String> lines = new ArrayList<>();
        PodStreamRun.Result result = new PodStreamRun(
                        cluster,
                        List.of(driver(0)),
                        placement -> lines.add(
                                placement.pod().tenant() + "/" + placement.pod().name() + " -> "
                                        + placement.node().orElse("-") + " " + placement.outcome()))
                .measuring(streamNodes)
                .run(ClusterPod.stream(SEED, 24));
        lines.forEach(System.out::println);
        System.out.println(result.summary());

        assertThat(result.admissionFailures()).isEmpty();
        assertThat(result.coLocations()).isEmpty();
        assertThat(result.overCommits()).isEmpty();
        assertThat(result.admitted()).isEqualTo(result.bound());
        assertThat(result.placements())
                .filteredOn(p -> p.node().isPresent())
                .extracting(p -> p.pod().milli())
                .contains(250, 500, 1000, 2000);
        // the stream asks for more than the nodes hold, so someone finds no room
        assertThat(result.fillAtFirstNoRoom()).isPresent();
        assertThat(result.fillAtFirstNoRoom().getAsDouble()).isGreaterThanOrEqualTo(0.95);
        // the agents agree with kubelet: every admitted pod's milli is held
        long admittedMilli = result.placements().stream()
                .filter(p -> p.outcome().equals("admitted"))
                .mapToLong(p -> p.pod().milli())
                .sum();
        long held = cluster.nodes().stream()
                .filter(n -> streamNodes.contains(n.name()))
                .map(ClusterNode::state)
                .flatMap(s -> s.getGpusList().stream())
                .mapToLong(GpuState::getMilliAllocated)
                .sum();
        assertThat(held).isEqualTo(admittedMilli);
    }
}
