package io.omai.harness.contract;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.ReleaseRequest;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.simulator.kubelet.KubeletSimulator.Admission;
import io.omai.simulator.sim.SimNode;
import java.nio.file.Path;
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
 * Two reserved pods of the same size waiting on one node (issue #15 follow-up), through kubelet's side of the
 * device-plugin API: GetPreferredAllocation and Allocate name no pod, so only kubelet's IDs and the
 * reservations can tell the pods apart. One agent (per-GPU policy, no Kubernetes API) for the class.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class SameSizeAdmissionContractTest {
    private AdmissionNode node;
    private ManagedChannel channel;
    private NodeAgentGrpc.NodeAgentBlockingStub api;

    @BeforeAll
    void start(@TempDir Path root) throws Exception {
        node = new AdmissionNode(root, 2, "gpu");
        channel = ManagedChannelBuilder.forAddress("127.0.0.1", node.schedulerApiPort)
                .usePlaintext()
                .build();
        api = NodeAgentGrpc.newBlockingStub(channel);
    }

    @AfterAll
    void stop() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        node.close();
    }

    private void reserve(String pod, String tenant, int gpu) {
        api.withDeadlineAfter(30, TimeUnit.SECONDS)
                .reserve(ReserveRequest.newBuilder()
                        .setIdempotencyKey("key-" + pod)
                        .setPodUid(pod)
                        .setTenant(tenant)
                        .setLeaseSeconds(120)
                        .addContainers(ContainerAssignment.newBuilder()
                                .setName("main")
                                .addGpuUuids(SimNode.uuidOf(gpu))
                                .setMilli(300))
                        .build());
    }

    private static List<String> ids(int gpu, int count) {
        return IntStream.range(0, count)
                .mapToObj(slot -> SimNode.uuidOf(gpu) + "-m" + slot)
                .toList();
    }

    @Test
    @Order(1)
    void podsOfDifferentTenantsAreRefusedRatherThanGuessedEvenWithReservations() throws Exception {
        reserve("a", "team-a", 0);
        reserve("b", "team-b", 1);
        try {
            Throwable thrown = catchThrowable(() -> node.admit("a", "main", 300));
            assertThat(thrown).isInstanceOf(StatusRuntimeException.class);
            StatusRuntimeException refused = (StatusRuntimeException) thrown;

            assertThat(refused).as("GetPreferredAllocation must be refused").isNotNull();
            assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
            assertThat(refused.getStatus().getDescription())
                    .contains("[team-a, team-b]")
                    .contains("reservations cannot tell them apart");
            assertThat(node.allocationDirectories()).isEmpty();
        } finally {
            api.release(ReleaseRequest.newBuilder().setIdempotencyKey("key-a").build());
            api.release(ReleaseRequest.newBuilder().setIdempotencyKey("key-b").build());
        }
    }

    @Test
    @Order(2)
    void podsOfOneTenantAreEachAdmittedOnTheReservationKubeletsIdsCover() throws Exception {
        reserve("x", "team-a", 0);
        reserve("y", "team-a", 1);

        // kubelet admits y first, on IDs of y's reserved GPU it chose itself (the agent's first guess is x)
        ContainerAllocateResponse first = node.plugin().allocate(ids(1, 300));
        node.record("y", "main", ids(1, 300));
        // then x, as kubelet does: the agent's preference is x's reserved GPU, the one left
        Admission second = node.admit("x", "main", 300);

        assertThat(first.getEnvsOrThrow("OMAI_ALLOCATION_ID")).isNotBlank();
        assertThat(second.deviceIds()).hasSize(300).allMatch(id -> id.startsWith(SimNode.uuidOf(0) + "-m"));
        assertThat(node.allocationDirectories()).hasSize(2);
    }
}
