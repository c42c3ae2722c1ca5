package io.omai.harness.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.BindingBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSlice;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.stub.MetadataUtils;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.GpuState;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.simulator.cluster.ClusterNode;
import io.omai.simulator.cluster.ClusterPod;
import io.omai.simulator.cluster.SimulatedCluster;
import io.omai.simulator.launcher.AgentJvm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The simulated cluster itself, without an extender: three agent JVMs on one API server, each node discoverable
 * through the agents' EndpointSlice; a pod reserved over a node's scheduler API (with the extender's
 * service-account token, which the agent checks with a TokenReview against the API) and bound through the API is
 * admitted by that node's kubelet onto exactly the reserved GPU, consuming the reservation, and a pod bound
 * without a reservation is identified by the agent's informer (kubelet's path only).
 */
class SimulatedClusterTest {
    @TempDir
    static Path dir;

    private static SimulatedCluster cluster;

    @BeforeAll
    static void start() {
        cluster = SimulatedCluster.start(
                dir, new SimulatedCluster.Options(List.of(2, 3, 2), 2, 2, Map.of(), AgentJvm.QUICK_START));
    }

    @AfterAll
    static void stop() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void everyAgentIsPublishedWithItsNodeAndAddress() {
        EndpointSlice slice = cluster.client()
                .discovery()
                .v1()
                .endpointSlices()
                .inNamespace(SimulatedCluster.AGENT_NAMESPACE)
                .withLabel("kubernetes.io/service-name", SimulatedCluster.AGENT_SERVICE)
                .list()
                .getItems()
                .getFirst();
        assertThat(slice.getPorts().getFirst().getPort()).isEqualTo(cluster.schedulerApiPort());
        assertThat(slice.getEndpoints())
                .extracting(e -> e.getNodeName() + "@" + e.getAddresses().getFirst())
                .containsExactly("node-1@127.0.0.11", "node-2@127.0.0.12", "node-3@127.0.0.13");
        for (ClusterNode node : cluster.nodes()) {
            NodeState state = node.state();
            assertThat(state.getNodeName()).isEqualTo(node.name());
            assertThat(state.getGpusCount()).isEqualTo(node.gpus());
            assertThat(state.getHcasList())
                    .singleElement()
                    .satisfies(hca -> assertThat(hca.getVfsFree()).isEqualTo(2));
        }
        assertThat(cluster.milliCapacity()).isEqualTo(7000);
        assertThat(cluster.client().nodes().withName("node-2").get().getStatus().getAllocatable())
                .containsKey(SimulatedCluster.MILLI_GPU);
    }

    @Test
    void aReservedPodBoundThroughTheApiIsAdmittedOnTheReservedGpu() throws Exception {
        ClusterNode node = cluster.node("node-2");
        ClusterPod spec = new ClusterPod("team-a", "reserved", 500, 1, Optional.empty(), Optional.empty(), 0);
        cluster.client().pods().inNamespace("team-a").resource(spec.toPod()).create();
        Pod pod = cluster.client()
                .pods()
                .inNamespace("team-a")
                .withName("reserved")
                .get();
        assertThat(pod.getMetadata().getUid()).isNotBlank();
        String lastGpu = node.state().getGpus(2).getUuid();
        ManagedChannel channel = ManagedChannelBuilder.forAddress(
                        node.schedulerApiAddress(), cluster.schedulerApiPort())
                .usePlaintext()
                .build();
        try {
            Metadata bearer = new Metadata();
            bearer.put(
                    Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER),
                    "Bearer " + Files.readString(cluster.tokenFile()));
            NodeAgentGrpc.newBlockingStub(channel)
                    .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(bearer))
                    .withDeadlineAfter(10, TimeUnit.SECONDS)
                    .reserve(ReserveRequest.newBuilder()
                            .setIdempotencyKey("test/" + pod.getMetadata().getUid())
                            .setPodUid(pod.getMetadata().getUid())
                            .setTenant("team-a")
                            .setLeaseSeconds(60)
                            .addContainers(ContainerAssignment.newBuilder()
                                    .setName("main")
                                    .addGpuUuids(lastGpu)
                                    .setMilli(500))
                            .build());
        } finally {
            channel.shutdownNow();
        }
        bind("team-a", "reserved", "node-2");

        ClusterNode.Admission admission =
                node.admit(cluster.client(), "team-a", "reserved", Duration.ofSeconds(30), true);

        assertThat(admission.failure()).isEmpty();
        assertThat(admission.deviceIds()).hasSize(501);
        NodeState after = node.state();
        assertThat(after.getReservationsList()).isEmpty();
        assertThat(after.getGpusList())
                .filteredOn(g -> g.getUuid().equals(lastGpu))
                .singleElement()
                .satisfies(g -> {
                    assertThat(g.getMilliAllocated()).isEqualTo(500);
                    assertThat(g.getTenantsList()).containsExactly("team-a");
                });
        assertThat(node.kubelet().podResources().held(SimulatedCluster.IB_VF)).hasSize(1);
        assertThat(cluster.client()
                        .pods()
                        .inNamespace("team-a")
                        .withName("reserved")
                        .get()
                        .getStatus()
                        .getPhase())
                .isEqualTo("Running");
    }

    @Test
    void anUnreservedPodBoundThroughTheApiIsIdentifiedByTheAgent() {
        ClusterNode node = cluster.node("node-3");
        ClusterPod spec = new ClusterPod("team-b", "plain", 250, 0, Optional.empty(), Optional.empty(), 0);
        cluster.client().pods().inNamespace("team-b").resource(spec.toPod()).create();
        bind("team-b", "plain", "node-3");

        ClusterNode.Admission admission = node.admit(cluster.client(), "team-b", "plain", Duration.ofSeconds(30), true);

        assertThat(admission.failure()).isEmpty();
        assertThat(node.state().getGpusList())
                .filteredOn(g -> g.getMilliAllocated() > 0)
                .singleElement()
                .extracting(GpuState::getTenantsList)
                .isEqualTo(List.of("team-b"));
    }

    private static void bind(String namespace, String pod, String node) {
        cluster.client()
                .bindings()
                .inNamespace(namespace)
                .resource(new BindingBuilder()
                        .withNewMetadata()
                        .withName(pod)
                        .endMetadata()
                        .withNewTarget()
                        .withKind("Node")
                        .withName(node)
                        .endTarget()
                        .build())
                .create();
    }
}
