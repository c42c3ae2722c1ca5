package io.omai.harness.contract;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.AllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.ReleaseRequest;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.simulator.kubelet.KubeletSimulator.Admission;
import io.omai.simulator.sim.SimNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * An Allocate of several containers is validated and recorded as a whole, and an init container's devices are
 * reused by the app containers of its pod, as kubelet's device manager does. One agent for the class; each test
 * leaves the node empty.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class MultiContainerContractTest {
    private AdmissionNode node;

    @BeforeAll
    void start(@TempDir Path root) throws Exception {
        node = new AdmissionNode(root, 2, "gpu");
    }

    @AfterAll
    void stop() throws Exception {
        node.close();
    }

    private static List<String> ids(int gpu, int from, int count) {
        return IntStream.range(from, from + count)
                .mapToObj(slot -> SimNode.uuidOf(gpu) + "-m" + slot)
                .toList();
    }

    private static AllocateRequest request(List<List<String>> containers) {
        AllocateRequest.Builder request = AllocateRequest.newBuilder();
        containers.forEach(ids -> request.addContainerRequests(
                ContainerAllocateRequest.newBuilder().addAllDevicesIds(ids)));
        return request.build();
    }

    private Status refusal(AllocateRequest request) {
        StatusRuntimeException refused = (StatusRuntimeException) org.assertj.core.api.Assertions.catchThrowable(
                () -> node.plugin().allocate(request));
        assertThat(refused).as("Allocate must be refused").isNotNull();
        assertThat(refused.getStatus().getDescription()).as("grpc-message").isNotBlank();
        return refused.getStatus();
    }

    @Test
    @Order(1)
    void overlappingContainersAreRefusedAsAWholeAndLeaveNothing() throws Exception {
        Status status = refusal(request(List.of(ids(0, 0, 250), ids(0, 200, 250))));

        assertThat(status.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(status.getDescription())
                .contains("container_requests[1] and [0]")
                .contains(ids(0, 200, 1).getFirst());
        assertThat(node.allocationDirectories()).isEmpty();
    }

    @Test
    @Order(2)
    void twentyThousandContainersAreRefusedWithoutRecordingAny() throws Exception {
        List<List<String>> containers = new ArrayList<>();
        for (int i = 0; i < 20_000; i++) {
            containers.add(ids(i % 2, (i / 2) % 1000, 1));
        }
        Status status = refusal(request(containers));

        assertThat(status.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(status.getDescription()).contains("20000 containers; at most 64");
        assertThat(node.allocationDirectories()).isEmpty();
    }

    @Test
    @Order(3)
    void aContainerThatDoesNotFitUndoesTheOthersOfItsRequest() throws Exception {
        // a scheduler holds 500 of GPU 1 for a pod kubelet has not admitted yet
        ManagedChannel channel = ManagedChannelBuilder.forAddress("127.0.0.1", node.schedulerApiPort)
                .usePlaintext()
                .build();
        try {
            NodeAgentGrpc.NodeAgentBlockingStub api =
                    NodeAgentGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
            api.reserve(ReserveRequest.newBuilder()
                    .setIdempotencyKey("hold-1")
                    .setPodUid("pod-r")
                    .setTenant("team-r")
                    .setLeaseSeconds(60)
                    .addContainers(ContainerAssignment.newBuilder()
                            .setName("main")
                            .addGpuUuids(SimNode.uuidOf(1))
                            .setMilli(500))
                    .build());

            // 300 on GPU 0 fits; 600 on GPU 1 does not, once the reservation is counted: neither is recorded
            Status status = refusal(request(List.of(ids(0, 0, 300), ids(1, 0, 600))));

            assertThat(status.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
            assertThat(status.getDescription())
                    .contains(SimNode.uuidOf(1))
                    .contains("600 milli requested, 500 free")
                    .contains("hold-1");
            assertThat(node.allocationDirectories()).isEmpty();
            api.release(ReleaseRequest.newBuilder().setIdempotencyKey("hold-1").build());
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    @Test
    @Order(4)
    void appContainersReuseTheirInitContainersDevices() throws Exception {
        int refusedBefore = refusals();
        // kubelet admits every container of the pod before any runs: the second init container gets the first
        // one's devices, the app container gets them too plus free ones, and then the init containers start
        Admission init1 = node.admit("trainer", "init-1", 250);
        String gpu = init1.response().getEnvsOrThrow("CUDA_VISIBLE_DEVICES");
        ContainerAllocateResponse init2 = node.plugin().allocate(init1.deviceIds());
        List<String> app = new ArrayList<>(init1.deviceIds());
        app.addAll(node.freeByGpu().get(gpu).subList(0, 250));
        ContainerAllocateResponse main = node.plugin().allocate(app);
        node.record("trainer", "main", app); // PodResources lists app containers, not finished init containers

        assertThat(main.getEnvsMap()).containsEntry("CUDA_VISIBLE_DEVICES", gpu);
        assertThat(node.controlFile(main)).exists();
        // the init containers start now: their files are still there
        assertThat(node.controlFile(init1.response())).exists();
        assertThat(node.controlFile(init2)).exists();
        assertThat(refusals()).isEqualTo(refusedBefore);

        // and once their grace period is over, only the app container's allocation remains
        await().atMost(Duration.ofSeconds(15))
                .untilAsserted(() -> assertThat(node.allocationDirectories()).hasSize(1));
        assertThat(node.controlFile(main)).exists();
        node.depart("trainer");
    }

    @Test
    @Order(5)
    void containersThatFitTogetherAreAdmittedTogether() throws Exception {
        AllocateResponse both = node.plugin().allocate(request(List.of(ids(1, 0, 100), ids(1, 100, 100))));

        assertThat(both.getContainerResponsesList())
                .hasSize(2)
                .allSatisfy(response -> assertThat(node.controlFile(response)).exists());
        assertThatThrownBy(() -> node.plugin().allocate(request(List.of())))
                .isInstanceOfSatisfying(
                        StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getDescription()).isNotBlank());
    }

    private int refusals() {
        return node.agent.log().split("event=allocate_refused", -1).length - 1;
    }
}
