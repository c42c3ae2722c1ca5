package io.omai.harness.e2e;

import static io.omai.harness.e2e.SimulatedGpuNode.RESOURCE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.GpuState;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.schedapi.v1.WatchNodeStateRequest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The scheduler API of a real agent process: what kubelet allocated through the device plugin is what a
 * scheduler reads and watches, with the tenant kubelet's PodResources names.
 */
class SchedulerApiEndToEndTest {
    @TempDir
    Path dir;

    private SimulatedGpuNode node;
    private ManagedChannel channel;

    @BeforeEach
    void start() throws Exception {
        node = new SimulatedGpuNode(dir, 2);
        node.startAgent();
        int port = ConfigLoader.load(node.config).schedulerApi().port();
        channel = ManagedChannelBuilder.forAddress("127.0.0.1", port)
                .usePlaintext()
                .build();
    }

    @AfterEach
    void stop() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        node.close();
    }

    @Test
    void schedulersSeeAndWatchWhatKubeletAllocated() {
        NodeAgentGrpc.NodeAgentBlockingStub api =
                NodeAgentGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
        node.kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
        node.kubelet.awaitDevices(RESOURCE, list -> list.size() == 2000, Duration.ofSeconds(10));
        NodeState before = api.getNodeState(GetNodeStateRequest.getDefaultInstance());
        assertThat(before.getNodeName()).isEqualTo("sim-node");
        assertThat(before.getGpusList())
                .hasSize(2)
                .allSatisfy(g -> assertThat(g.getMilliAllocated()).isZero());

        Iterator<NodeState> watch = NodeAgentGrpc.newBlockingStub(channel)
                .withDeadlineAfter(30, TimeUnit.SECONDS)
                .watchNodeState(WatchNodeStateRequest.newBuilder()
                        .setAfterGeneration(before.getGeneration())
                        .setIncarnation(before.getIncarnation())
                        .build());
        node.kubelet.admit("team-a", "trainer-0", "main", RESOURCE, 250);
        NodeState changed = watch.next();
        assertThat(changed.getGeneration()).isGreaterThan(before.getGeneration());
        assertThat(changed.getGpusList())
                .extracting(GpuState::getMilliAllocated)
                .containsExactlyInAnyOrder(250, 0);

        // Once kubelet's PodResources names the container, the tenant (its namespace) is published.
        await().atMost(Duration.ofSeconds(15))
                .untilAsserted(() -> assertThat(api.getNodeState(GetNodeStateRequest.getDefaultInstance())
                                .getTenantsList())
                        .containsExactly("team-a"));
    }
}
