package io.omai.agent.schedapi;

import static io.omai.agent.schedapi.NodeFixtures.GIB;
import static io.omai.agent.schedapi.NodeFixtures.uuid;
import static io.omai.agent.schedapi.NodeFixtures.vf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.omai.agent.schedapi.v1.AntiAffinity;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.ContainerRequirement;
import io.omai.agent.schedapi.v1.FitReason;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.GpuState;
import io.omai.agent.schedapi.v1.Health;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.schedapi.v1.ReleaseRequest;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.agent.schedapi.v1.ReserveResponse;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Duration;
import java.util.List;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class NodeAgentServiceTest {
    private InProcessSchedulerApi api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);

    @AfterEach
    void close() {
        api.close();
    }

    private static ContainerRequirement need(String name, int milli) {
        return ContainerRequirement.newBuilder().setName(name).setMilli(milli).build();
    }

    private static FitRequest fit(String tenant, ContainerRequirement... containers) {
        return FitRequest.newBuilder()
                .setTenant(tenant)
                .addAllContainers(List.of(containers))
                .build();
    }

    private static ContainerAssignment share(String name, String gpu, int milli) {
        return ContainerAssignment.newBuilder()
                .setName(name)
                .addGpuUuids(gpu)
                .setMilli(milli)
                .build();
    }

    private static ReserveRequest reserve(String key, String pod, String tenant, ContainerAssignment... containers) {
        return ReserveRequest.newBuilder()
                .setIdempotencyKey(key)
                .setPodUid(pod)
                .setTenant(tenant)
                .addAllContainers(List.of(containers))
                .setLeaseSeconds(30)
                .build();
    }

    private static GpuState gpu(NodeState state, int index) {
        return state.getGpus(index);
    }

    private static StatusRuntimeException failure(Runnable call) {
        try {
            call.run();
        } catch (StatusRuntimeException e) {
            return e;
        }
        throw new AssertionError("call succeeded but was expected to fail");
    }

    @Test
    void getNodeState_reportsGpusHcasAllocationsReservationsAndTenants() {
        api.inventory.allocate(uuid(1), "team-a", 250, 20 * GIB);
        api.inventory.setHealth(uuid(7), DeviceHealth.unhealthy("XID 79"));
        api.blocking.reserve(reserve("k1", "pod-1", "team-b", share("main", uuid(2), 500)));

        NodeState state = api.blocking.getNodeState(GetNodeStateRequest.getDefaultInstance());

        assertThat(state.getNodeName()).isEqualTo("node-a");
        assertThat(state.getAntiAffinity()).isEqualTo(AntiAffinity.ANTI_AFFINITY_GPU);
        assertThat(state.getGpusCount()).isEqualTo(8);
        GpuState first = gpu(state, 0);
        assertThat(first.getUuid()).isEqualTo(uuid(0));
        assertThat(first.getModel()).isEqualTo(NodeFixtures.MODEL);
        assertThat(first.getMemoryBytes()).isEqualTo(80 * GIB);
        assertThat(first.getMilliCapacity()).isEqualTo(1000);
        assertThat(first.getNumaNode()).isZero();
        assertThat(first.getAttributesMap()).containsEntry("class", "train");
        assertThat(first.getTagsList()).containsExactly("nvlink");
        assertThat(gpu(state, 1).getMilliAllocated()).isEqualTo(250);
        assertThat(gpu(state, 1).getMemoryAllocatedBytes()).isEqualTo(20 * GIB);
        assertThat(gpu(state, 1).getTenantsList()).containsExactly("team-a");
        assertThat(gpu(state, 2).getMilliReserved()).isEqualTo(500);
        assertThat(gpu(state, 2).getMemoryReservedBytes()).isEqualTo(40 * GIB);
        assertThat(gpu(state, 2).getTenantsList()).containsExactly("team-b");
        assertThat(gpu(state, 7).getHealth()).isEqualTo(Health.HEALTH_UNHEALTHY);
        assertThat(gpu(state, 7).getHealthReason()).isEqualTo("XID 79");
        assertThat(state.getHcasList())
                .extracting(h -> h.getName() + "@" + h.getNumaNode() + ":" + h.getVfsFree() + "/" + h.getVfsTotal())
                .containsExactly("mlx5_0@0:4/4", "mlx5_1@1:4/4");
        assertThat(state.getTenantsList()).containsExactly("team-a", "team-b");
        assertThat(state.getReservationsList()).extracting(r -> r.getPodUid()).containsExactly("pod-1");
    }

    @Test
    void getNodeState_generationGrowsOnEveryChange() {
        long before = api.blocking
                .getNodeState(GetNodeStateRequest.getDefaultInstance())
                .getGeneration();
        api.inventory.allocate(uuid(0), "team-a", 100, GIB);
        api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(0), 100)));

        long after = api.blocking
                .getNodeState(GetNodeStateRequest.getDefaultInstance())
                .getGeneration();

        assertThat(after).isGreaterThanOrEqualTo(before + 2);
    }

    @Test
    void fit_shareGoesToTheFullestGpuThatHoldsIt() {
        api.inventory.allocate(uuid(3), "team-a", 600, 10 * GIB);
        api.inventory.allocate(uuid(5), "team-a", 200, 10 * GIB);

        FitResponse response = api.blocking.fit(fit("team-a", need("main", 300)));

        assertThat(response.getFeasible()).isTrue();
        ContainerAssignment assignment = response.getAssignments(0);
        assertThat(assignment.getGpuUuidsList()).containsExactly(uuid(3));
        assertThat(assignment.getMilli()).isEqualTo(300);
        assertThat(assignment.getMemoryBytes()).isEqualTo(MilliOf80Gib.bytes(300));
        assertThat(response.getScore()).isEqualTo(90 * 900 / 1000 + 10);
        assertThat(response.getReasonsList()).isEmpty();
    }

    @Test
    void fit_amongEquallyFullGpusTheShareGoesToTheFullerNumaNodeLikeTheDevicePluginsPreference() {
        // GPU 1 (NUMA 0) and GPU 5 (NUMA 1) have 600 free each; NUMA 1 has less free in all (GPU 6 is used),
        // so the share goes to GPU 5 (the old Fit took the lower index, GPU 1; the preference took GPU 5)
        api.inventory.allocate(uuid(1), "team-a", 400, 10 * GIB);
        api.inventory.allocate(uuid(5), "team-a", 400, 10 * GIB);
        api.inventory.allocate(uuid(6), "team-a", 100, 10 * GIB);

        FitResponse response = api.blocking.fit(fit("team-a", need("main", 500)));

        assertThat(response.getAssignments(0).getGpuUuidsList()).containsExactly(uuid(5));
    }

    @Test
    void fit_wholeGpusThatNoNumaNodeHoldsSpanAsFewNodesAsPossible() {
        // two free on NUMA 0, three on NUMA 1: four GPUs take NUMA 1's three and one of NUMA 0
        api.inventory.allocate(uuid(0), "team-a", 100, GIB);
        api.inventory.allocate(uuid(1), "team-a", 100, GIB);
        api.inventory.allocate(uuid(4), "team-a", 100, GIB);

        FitResponse response = api.blocking.fit(fit("team-a", need("train", 4000)));

        assertThat(response.getFeasible()).isTrue();
        assertThat(response.getAssignments(0).getGpuUuidsList()).containsExactly(uuid(2), uuid(5), uuid(6), uuid(7));
    }

    @Test
    void fit_otherTenantAvoidsSharedGpusUnderGpuPolicy() {
        api.inventory.allocate(uuid(3), "team-a", 600, 10 * GIB);

        FitResponse response = api.blocking.fit(fit("team-b", need("main", 300)));

        assertThat(response.getAssignments(0).getGpuUuidsList()).doesNotContain(uuid(3));
    }

    @Test
    void fit_wholeGpusComeFromOneNumaNode() {
        api.inventory.allocate(uuid(0), "team-a", 100, GIB);

        FitResponse response = api.blocking.fit(fit("team-a", need("train", 4000)));

        assertThat(response.getFeasible()).isTrue();
        assertThat(response.getAssignments(0).getGpuUuidsList()).containsExactly(uuid(4), uuid(5), uuid(6), uuid(7));
        assertThat(response.getAssignments(0).getMemoryBytes()).isEqualTo(80 * GIB);
    }

    @Test
    void fit_expressionSelectsByClassTagsAndQuantity() {
        FitResponse infer = api.blocking.fit(fit(
                "team-a",
                need("main", 500).toBuilder()
                        .setExpression("device.class == 'infer' && device.memory >= quantity('80Gi')")
                        .build()));
        FitResponse nvlink = api.blocking.fit(fit(
                "team-a",
                need("main", 500).toBuilder()
                        .setExpression("'nvlink' in device.tags && device.index > 1")
                        .build()));

        assertThat(infer.getAssignments(0).getGpuUuidsList()).containsExactly(uuid(4));
        assertThat(nvlink.getAssignments(0).getGpuUuidsList()).containsExactly(uuid(2));
    }

    @Test
    void fit_infeasibleGivesAReasonForEveryGpu() {
        for (int i = 0; i < 6; i++) {
            api.inventory.allocate(uuid(i), "team-a", 900, 10 * GIB);
        }
        api.inventory.allocate(uuid(6), "team-b", 100, GIB);
        api.inventory.setHealth(uuid(7), DeviceHealth.unhealthy("XID 48"));

        FitResponse response = api.blocking.fit(fit("team-a", need("main", 500)));

        assertThat(response.getFeasible()).isFalse();
        assertThat(response.getAssignmentsList()).isEmpty();
        assertThat(response.getReasonsList())
                .extracting(FitReason::getGpuUuid, FitReason::getMessage)
                .contains(
                        org.assertj.core.groups.Tuple.tuple(uuid(0), "500 milli requested, 100 free"),
                        org.assertj.core.groups.Tuple.tuple(
                                uuid(6),
                                "anti-affinity (policy gpu): tenant 'team-a' may not share GPU " + uuid(6)
                                        + " with tenant 'team-b'"),
                        org.assertj.core.groups.Tuple.tuple(uuid(7), "unhealthy: XID 48"),
                        org.assertj.core.groups.Tuple.tuple("", "no GPU can take 500 milli"));
        assertThat(response.getReasonsList())
                .allMatch(reason -> reason.getContainer().equals("main"));
    }

    @Test
    void fit_expressionFalseIsAReason() {
        FitResponse response = api.blocking.fit(fit(
                "team-a",
                need("main", 500).toBuilder()
                        .setExpression("device.model.startsWith('NVIDIA A100')")
                        .build()));

        assertThat(response.getFeasible()).isFalse();
        assertThat(response.getReasons(0).getMessage())
                .isEqualTo("expression is false: device.model.startsWith('NVIDIA A100')");
    }

    @Test
    void fit_expressionErrorOnADeviceIsAReasonNotAFailure() {
        FitResponse response = api.blocking.fit(fit(
                "team-a",
                need("main", 500).toBuilder()
                        .setExpression("device.attributes['rack'] == 'r12'")
                        .build()));

        assertThat(response.getFeasible()).isFalse();
        assertThat(response.getReasons(0).getMessage())
                .startsWith("expression failed: this device has no key or attribute 'rack'");
    }

    @Test
    void fit_vfsComeFromTheHcaOnTheGpusNumaNode() {
        FitResponse response = api.blocking.fit(fit(
                "team-a",
                need("main", 1000).toBuilder()
                        .setExpression("device.numa == 1")
                        .setVfs(2)
                        .build()));

        assertThat(response.getAssignments(0).getVfIdsList()).containsExactly(vf(1, 0), vf(1, 1));
        assertThat(response.getScore()).isEqualTo(100);
    }

    @Test
    void fit_tooManyVfsIsANodeReason() {
        FitResponse response = api.blocking.fit(
                fit("team-a", need("main", 0).toBuilder().setVfs(9).build()));

        assertThat(response.getFeasible()).isFalse();
        assertThat(response.getReasons(0).getMessage()).isEqualTo("9 VF(s) needed, 8 free as omai.io/ib-vf");
    }

    @Test
    void fit_nodePolicyRefusesASecondTenantOnce() {
        api.close();
        api = new InProcessSchedulerApi(AntiAffinityPolicy.NODE);
        api.inventory.allocate(uuid(0), "team-a", 100, GIB);

        FitResponse response = api.blocking.fit(fit("team-b", need("main", 100)));

        assertThat(response.getFeasible()).isFalse();
        assertThat(response.getReasonsList()).singleElement().satisfies(reason -> {
            assertThat(reason.getGpuUuid()).isEmpty();
            assertThat(reason.getMessage()).contains("tenant 'team-b' may not use node node-a while tenant 'team-a'");
        });
    }

    @Test
    void fit_containersOfOnePodSeeEachOther() {
        FitResponse response = api.blocking.fit(fit("team-a", need("a", 600), need("b", 600), need("c", 400)));

        List<String> placed = response.getAssignmentsList().stream()
                .map(a -> a.getGpuUuids(0))
                .toList();
        assertThat(placed.get(0)).isNotEqualTo(placed.get(1));
        assertThat(placed.get(2)).isEqualTo(placed.get(0));
    }

    @Test
    void fit_badExpressionIsInvalidArgumentWithFieldAndPosition() {
        StatusRuntimeException e = failure(() -> api.blocking.fit(fit(
                "team-a",
                need("main", 500),
                need("side", 500).toBuilder().setExpression("device.memroy > 1").build())));

        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(e.getStatus().getDescription())
                .startsWith("containers[1].expression: line 1, column 7: ")
                .contains("memroy");
    }

    @Test
    void fit_nonBoolExpressionIsInvalidArgument() {
        StatusRuntimeException e = failure(() -> api.blocking.fit(fit(
                "team-a",
                need("main", 500).toBuilder().setExpression("device.memory").build())));

        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(e.getStatus().getDescription())
                .startsWith("containers[0].expression: ")
                .contains("bool");
    }

    static Stream<Arguments> malformedFits() {
        return Stream.of(
                Arguments.of(
                        fit("team-a", need("main", 500), need("side", 1500)),
                        "containers[1].milli: 1500 is not a share below 1000 nor a multiple of 1000"),
                Arguments.of(fit("", need("main", 500)), "tenant: is missing; expected a tenant name"),
                Arguments.of(fit("team a", need("main", 500)), "tenant: 'team a' is not a tenant name"),
                Arguments.of(fit("team-a"), "containers: is empty; a pod needs at least one container"),
                Arguments.of(
                        fit("team-a", need("main", 500), need("main", 500)),
                        "containers[1].name: 'main' is used by two containers"),
                Arguments.of(fit("team-a", need("Main", 500)), "containers[0].name: 'Main' is not a DNS label"),
                Arguments.of(fit("team-a", need("main", -5)), "containers[0].milli: -5 is negative"),
                Arguments.of(
                        fit("team-a", need("main", 2000).toBuilder().setGpus(3).build()),
                        "containers[0].gpus: 3 does not match milli 2000, which means 2 GPU(s)"),
                Arguments.of(
                        fit(
                                "team-a",
                                need("main", 500).toBuilder().setMemoryBytes(-1).build()),
                        "containers[0].memory_bytes: -1 is negative"),
                Arguments.of(
                        fit(
                                "team-a",
                                need("main", 0).toBuilder().setMemoryBytes(GIB).build()),
                        "containers[0].memory_bytes: 1073741824 bytes of GPU memory asked for but milli is 0"),
                Arguments.of(
                        fit("team-a", need("main", 500).toBuilder().setVfs(-1).build()),
                        "containers[0].vfs: -1 is not between 0 and 64"),
                Arguments.of(
                        fit(
                                "team-a",
                                need("main", 0).toBuilder()
                                        .setExpression("true")
                                        .build()),
                        "containers[0].expression: selects GPUs but milli is 0"),
                Arguments.of(
                        fit("team-a", need("main", 500)).toBuilder()
                                .setPodUid("pod 1")
                                .build(),
                        "pod_uid: 'pod 1' is not a pod UID"));
    }

    @ParameterizedTest
    @MethodSource("malformedFits")
    void fit_malformedRequestIsInvalidArgumentNamingTheField(FitRequest request, String message) {
        StatusRuntimeException e = failure(() -> api.blocking.fit(request));

        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(e.getStatus().getDescription()).startsWith(message);
    }

    @Test
    void reserve_holdsCapacityThatFitAndOtherReservationsSee() {
        ReserveResponse response = api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(0), 700)));

        assertThat(response.getReservation().getContainers(0).getMemoryBytes()).isEqualTo(MilliOf80Gib.bytes(700));
        assertThat(response.getReservation().getExpiresAt().getSeconds()
                        - response.getReservation().getCreatedAt().getSeconds())
                .isEqualTo(30);
        FitResponse fit = api.blocking.fit(fit(
                "team-a",
                need("main", 400).toBuilder().setExpression("device.index == 0").build()));
        assertThat(fit.getFeasible()).isFalse();
        assertThat(fit.getReasons(0).getMessage()).isEqualTo("400 milli requested, 300 free");
        StatusRuntimeException e =
                failure(() -> api.blocking.reserve(reserve("k2", "pod-2", "team-a", share("main", uuid(0), 400))));
        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(e.getStatus().getDescription()).contains(uuid(0)).contains("400 milli requested, 300 free");
    }

    @Test
    void fit_withPodUidIgnoresThatPodsOwnReservation() {
        api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(0), 700)));
        FitRequest refit = fit(
                "team-a",
                need("main", 700).toBuilder().setExpression("device.index == 0").build());

        assertThat(api.blocking.fit(refit).getFeasible()).isFalse();
        assertThat(api.blocking
                        .fit(refit.toBuilder().setPodUid("pod-1").build())
                        .getFeasible())
                .isTrue();
        assertThat(api.blocking
                        .fit(refit.toBuilder().setPodUid("pod-2").build())
                        .getFeasible())
                .isFalse();
    }

    @Test
    void reserve_sameKeySameContentGivesTheSameResult() {
        ReserveResponse first = api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(0), 700)));
        api.clock.advance(Duration.ofSeconds(3));

        ReserveResponse again = api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(0), 700)));

        // a retry is a renewal: the same reservation, its lease counted from now
        var renewed = first.getReservation().toBuilder();
        renewed.getExpiresAtBuilder()
                .setSeconds(first.getReservation().getExpiresAt().getSeconds() + 3);
        assertThat(again.getReservation()).isEqualTo(renewed.build());
        assertThat(api.book.outstanding()).hasSize(1);
    }

    @Test
    void reserve_sameKeyDifferentContentIsAlreadyExists() {
        api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(0), 700)));

        StatusRuntimeException e =
                failure(() -> api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(0), 600))));

        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.ALREADY_EXISTS);
        assertThat(e.getStatus().getDescription())
                .startsWith("idempotency key 'k1' was used for a different " + "reservation (containers");
    }

    @Test
    void reserve_refusalsMapToStatuses() {
        api.inventory.allocate(uuid(1), "team-b", 100, GIB);
        api.inventory.setHealth(uuid(2), DeviceHealth.unhealthy("XID 79"));

        assertThat(failure(() -> api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(1), 100))))
                        .getStatus())
                .satisfies(status -> {
                    assertThat(status.getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                    assertThat(status.getDescription())
                            .contains("tenant 'team-a' may not share GPU " + uuid(1) + " with tenant 'team-b'");
                });
        assertThat(failure(() -> api.blocking.reserve(reserve("k2", "pod-2", "team-a", share("main", uuid(2), 100))))
                        .getStatus()
                        .getCode())
                .isEqualTo(Status.Code.FAILED_PRECONDITION);
        assertThat(failure(() -> api.blocking.reserve(reserve("k3", "pod-3", "team-a", share("main", "GPU-x", 100))))
                        .getStatus()
                        .getCode())
                .isEqualTo(Status.Code.NOT_FOUND);
        api.blocking.reserve(reserve("k4", "pod-4", "team-a", share("main", uuid(3), 100)));
        assertThat(failure(() -> api.blocking.reserve(reserve("k5", "pod-4", "team-a", share("main", uuid(4), 100))))
                        .getStatus()
                        .getCode())
                .isEqualTo(Status.Code.ALREADY_EXISTS);
    }

    static Stream<Arguments> malformedReserves() {
        ReserveRequest good = reserve("k1", "pod-1", "team-a", share("main", uuid(0), 500));
        return Stream.of(
                Arguments.of(edit(good, r -> r.clearIdempotencyKey()), "idempotency_key: is missing"),
                Arguments.of(
                        edit(good, r -> r.setIdempotencyKey("has space")),
                        "idempotency_key: 'has space' is not 1 to 256 printable ASCII characters"),
                Arguments.of(edit(good, r -> r.clearPodUid()), "pod_uid: is missing"),
                Arguments.of(edit(good, r -> r.setTenant("-bad")), "tenant: '-bad' is not a tenant name"),
                Arguments.of(edit(good, r -> r.setLeaseSeconds(-1)), "lease_seconds: -1 is not between 1 and 3600"),
                Arguments.of(edit(good, r -> r.setLeaseSeconds(7200)), "lease_seconds: 7200 is not between 1 and 3600"),
                Arguments.of(edit(good, r -> r.clearContainers()), "containers: is empty"),
                Arguments.of(
                        edit(good, r -> r.setContainers(0, share("main", uuid(0), 1500))),
                        "containers[0].milli: 1500 is not a share below 1000 nor a multiple of 1000"),
                Arguments.of(
                        edit(good, r -> r.setContainers(0, share("main", uuid(0), 2000))),
                        "containers[0].gpu_uuids: 1 GPU(s) named but milli 2000 needs 2"),
                Arguments.of(
                        edit(
                                good,
                                r -> r.setContainers(
                                        0,
                                        share("main", uuid(0), 2000).toBuilder()
                                                .addGpuUuids(uuid(0))
                                                .build())),
                        "containers[0].gpu_uuids[1]: '" + uuid(0) + "' is named twice"),
                Arguments.of(
                        edit(good, r -> r.setContainers(0, share("main", "", 500))),
                        "containers[0].gpu_uuids[0]: is missing; expected a GPU UUID"),
                Arguments.of(
                        edit(
                                good,
                                r -> r.addContainers(share("side", uuid(1), 100).toBuilder()
                                        .addVfIds(vf(0, 0))
                                        .addVfIds(vf(0, 0))
                                        .build())),
                        "containers[1].vf_ids[1]: '" + vf(0, 0) + "' is named twice in this pod"));
    }

    private static ReserveRequest edit(ReserveRequest request, UnaryOperator<ReserveRequest.Builder> change) {
        return change.apply(request.toBuilder()).build();
    }

    @ParameterizedTest
    @MethodSource("malformedReserves")
    void reserve_malformedRequestIsInvalidArgumentAndChangesNothing(ReserveRequest request, String message) {
        long generation = api.blocking
                .getNodeState(GetNodeStateRequest.getDefaultInstance())
                .getGeneration();

        StatusRuntimeException e = failure(() -> api.blocking.reserve(request));

        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(e.getStatus().getDescription()).startsWith(message);
        assertThat(api.book.outstanding()).isEmpty();
        assertThat(api.blocking
                        .getNodeState(GetNodeStateRequest.getDefaultInstance())
                        .getGeneration())
                .isEqualTo(generation);
    }

    @Test
    void release_byPodOrKeyAndUnknownIsNotFound() {
        api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(0), 500)));
        api.blocking.reserve(reserve("k2", "pod-2", "team-a", share("main", uuid(1), 500)));

        assertThat(api.blocking
                        .release(ReleaseRequest.newBuilder().setPodUid("pod-1").build())
                        .getReleased()
                        .getIdempotencyKey())
                .isEqualTo("k1");
        assertThat(api.blocking
                        .release(ReleaseRequest.newBuilder()
                                .setIdempotencyKey("k2")
                                .build())
                        .getReleased()
                        .getPodUid())
                .isEqualTo("pod-2");
        StatusRuntimeException gone = failure(() -> api.blocking.release(
                ReleaseRequest.newBuilder().setIdempotencyKey("k2").build()));
        assertThat(gone.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
        assertThat(gone.getStatus().getDescription()).contains("'k2'");
        assertThat(api.blocking
                        .getNodeState(GetNodeStateRequest.getDefaultInstance())
                        .getReservationsList())
                .isEmpty();
    }

    @Test
    void release_withoutSelectorIsInvalidArgument() {
        StatusRuntimeException e = failure(() -> api.blocking.release(ReleaseRequest.getDefaultInstance()));

        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(e.getStatus().getDescription())
                .isEqualTo("selector: neither pod_uid nor idempotency_key is set; " + "set one");
    }

    @Test
    void reserve_leaseExpiryFreesCapacity() {
        api.blocking.reserve(reserve("k1", "pod-1", "team-a", share("main", uuid(0), 900)));
        api.clock.advance(Duration.ofSeconds(30));

        FitResponse fit = api.blocking.fit(fit(
                "team-b",
                need("main", 900).toBuilder().setExpression("device.index == 0").build()));

        assertThat(fit.getFeasible()).isTrue();
        assertThatThrownBy(() -> api.blocking.release(
                        ReleaseRequest.newBuilder().setPodUid("pod-1").build()))
                .isInstanceOf(StatusRuntimeException.class)
                .hasMessageContaining("NOT_FOUND");
    }

    /** Memory proportional to a share of an 80 GiB card, as the agent computes it. */
    private static final class MilliOf80Gib {
        static long bytes(int milli) {
            return io.omai.placement.MilliGpu.defaultMemory(milli, 80 * GIB);
        }
    }
}
