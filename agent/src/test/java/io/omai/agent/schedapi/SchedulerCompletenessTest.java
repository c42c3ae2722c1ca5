package io.omai.agent.schedapi;

import static io.omai.agent.schedapi.NodeFixtures.GIB;
import static io.omai.agent.schedapi.NodeFixtures.uuid;
import static io.omai.agent.schedapi.NodeFixtures.vf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.ContainerRequirement;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.schedapi.v1.Reservation;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * What a scheduler needs beyond the first version of the API (issue #15): lease renewal, the allocations behind
 * the totals, Fit with preemption victims, kube-scheduler's init-container rule, the tenant refusal when capacity
 * also refuses, PCIe places, VF resources and the tenant label.
 */
class SchedulerCompletenessTest {
    private InProcessSchedulerApi api;

    @AfterEach
    void close() {
        if (api != null) {
            api.close();
        }
    }

    private static ContainerAssignment share(String name, String gpu, int milli) {
        return ContainerAssignment.newBuilder()
                .setName(name)
                .addGpuUuids(gpu)
                .setMilli(milli)
                .build();
    }

    private static ReserveRequest reserve(String key, String pod, String tenant, int lease, ContainerAssignment c) {
        return ReserveRequest.newBuilder()
                .setIdempotencyKey(key)
                .setPodUid(pod)
                .setTenant(tenant)
                .setLeaseSeconds(lease)
                .addContainers(c)
                .build();
    }

    private static ContainerRequirement need(String name, int milli) {
        return ContainerRequirement.newBuilder().setName(name).setMilli(milli).build();
    }

    private static ContainerRequirement init(String name, int milli) {
        return need(name, milli).toBuilder().setInit(true).build();
    }

    private static FitRequest fit(String tenant, ContainerRequirement... containers) {
        return FitRequest.newBuilder()
                .setTenant(tenant)
                .addAllContainers(List.of(containers))
                .build();
    }

    private static StatusRuntimeException failure(Runnable call) {
        try {
            call.run();
        } catch (StatusRuntimeException e) {
            return e;
        }
        throw new AssertionError("expected the call to fail");
    }

    private static long seconds(Reservation reservation) {
        return reservation.getExpiresAt().getSeconds();
    }

    /** One 80 GiB GPU on NUMA 0 under switch 0000:16:00.0, idle. */
    private static NodeSnapshot oneGpu() {
        return new NodeSnapshot(
                "node-a",
                1,
                List.of(new GpuSnapshot(
                        uuid(0),
                        0,
                        NodeFixtures.MODEL,
                        80 * GIB,
                        1000,
                        0,
                        0,
                        DeviceHealth.HEALTHY,
                        0,
                        Map.of(),
                        Set.of(),
                        Set.of(),
                        "0000:17:00.0",
                        "0000:16:00.0")),
                List.of());
    }

    // ----- renewal -----

    @Test
    void reserve_sameKeyLongerLeaseExtendsTheReservation() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);
        Reservation first = api.blocking
                .reserve(reserve("k1", "pod-1", "team-a", 30, share("main", uuid(0), 500)))
                .getReservation();
        api.clock.advance(Duration.ofSeconds(20));

        Reservation renewed = api.blocking
                .reserve(reserve("k1", "pod-1", "team-a", 60, share("main", uuid(0), 500)))
                .getReservation();

        assertThat(seconds(renewed)).isEqualTo(seconds(first) - 30 + 20 + 60);
        assertThat(renewed.getCreatedAt()).isEqualTo(first.getCreatedAt());
        assertThat(api.book.outstanding()).hasSize(1);
        // still live where the first lease would have ended
        api.clock.advance(Duration.ofSeconds(30));
        assertThat(api.book.forKey("k1")).isPresent();
    }

    @Test
    void reserve_renewalNeverShortensTheLease() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);
        Reservation first = api.blocking
                .reserve(reserve("k1", "pod-1", "team-a", 600, share("main", uuid(0), 500)))
                .getReservation();
        api.clock.advance(Duration.ofSeconds(10));

        Reservation again = api.blocking
                .reserve(reserve("k1", "pod-1", "team-a", 30, share("main", uuid(0), 500)))
                .getReservation();

        assertThat(seconds(again)).isEqualTo(seconds(first));
    }

    @Test
    void reserve_sameKeyOtherAssignmentIsStillRefused() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);
        api.blocking.reserve(reserve("k1", "pod-1", "team-a", 30, share("main", uuid(0), 500)));

        StatusRuntimeException otherGpu =
                failure(() -> api.blocking.reserve(reserve("k1", "pod-1", "team-a", 60, share("main", uuid(1), 500))));
        StatusRuntimeException otherPod =
                failure(() -> api.blocking.reserve(reserve("k1", "pod-2", "team-a", 60, share("main", uuid(0), 500))));

        assertThat(otherGpu.getStatus().getCode()).isEqualTo(Status.Code.ALREADY_EXISTS);
        assertThat(otherGpu.getStatus().getDescription()).contains("containers");
        assertThat(otherPod.getStatus().getCode()).isEqualTo(Status.Code.ALREADY_EXISTS);
        assertThat(otherPod.getStatus().getDescription()).contains("pod UID");
    }

    // ----- tenant reason before capacity -----

    @Test
    void reserve_whenCapacityAndAntiAffinityBothRefuseTheTenantIsNamed() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);
        api.inventory.allocate(uuid(0), "team-x", 1000, 80 * GIB);

        StatusRuntimeException refused =
                failure(() -> api.blocking.reserve(reserve("k1", "pod-1", "team-y", 60, share("main", uuid(0), 500))));

        assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
        assertThat(refused.getStatus().getDescription()).contains("team-x");
    }

    // ----- allocations and victims -----

    /** GPU 0 fully held by pod-x (team-x), GPU 1 by pod-y (team-y) at 600, both listed as allocations. */
    private void twoBusyGpus() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);
        api.inventory.allocate(uuid(0), "team-x", 1000, 80 * GIB);
        api.inventory.allocate(uuid(1), "team-y", 600, 48 * GIB);
        for (int i = 2; i < 8; i++) {
            api.inventory.allocate(uuid(i), "team-z", 1000, 80 * GIB);
        }
        List<ContainerHolding> held = new ArrayList<>();
        held.add(new ContainerHolding(
                "uid-x", "team-x", "pod-x", "main", "team-x", uuid(0), 1000, 80 * GIB, List.of(vf(0, 0))));
        held.add(new ContainerHolding("uid-y", "team-y", "pod-y", "main", "team-y", uuid(1), 600, 48 * GIB, List.of()));
        for (int i = 2; i < 8; i++) {
            held.add(new ContainerHolding(
                    "uid-z" + i, "team-z", "pod-z" + i, "main", "team-z", uuid(i), 1000, 80 * GIB, List.of()));
        }
        api.inventory.update(node -> node.withAllocations(held));
    }

    @Test
    void getNodeState_listsTheAllocationsBehindTheTotals() {
        twoBusyGpus();

        NodeState state = api.blocking.getNodeState(GetNodeStateRequest.getDefaultInstance());

        assertThat(state.getAllocationsList()).hasSize(8);
        assertThat(state.getAllocations(0)).satisfies(a -> {
            assertThat(a.getPodUid()).isEqualTo("uid-x");
            assertThat(a.getPodNamespace()).isEqualTo("team-x");
            assertThat(a.getPodName()).isEqualTo("pod-x");
            assertThat(a.getContainer()).isEqualTo("main");
            assertThat(a.getTenant()).isEqualTo("team-x");
            assertThat(a.getGpuUuid()).isEqualTo(uuid(0));
            assertThat(a.getMilli()).isEqualTo(1000);
            assertThat(a.getMemoryBytes()).isEqualTo(80 * GIB);
            assertThat(a.getVfIdsList()).containsExactly(vf(0, 0));
        });
    }

    @Test
    void fit_ignoringVictimsFreesTheirRoomAndTheirTenant() {
        twoBusyGpus();
        FitRequest request = fit("team-w", need("main", 1000));

        FitResponse without = api.blocking.fit(request);
        FitResponse withVictim =
                api.blocking.fit(request.toBuilder().addIgnorePodUids("uid-y").build());

        assertThat(without.getFeasible()).isFalse();
        assertThat(withVictim.getFeasible())
                .as("reasons: %s", withVictim.getReasonsList())
                .isTrue();
        assertThat(withVictim.getAssignments(0).getGpuUuidsList()).containsExactly(uuid(1));
        // read-only: nothing was freed for real
        assertThat(api.blocking
                        .getNodeState(GetNodeStateRequest.getDefaultInstance())
                        .getGpus(1)
                        .getMilliAllocated())
                .isEqualTo(600);
    }

    @Test
    void fit_victimsReservationsAreFreeToo() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);
        for (int i = 0; i < 8; i++) {
            api.blocking.reserve(reserve("k" + i, "pod-" + i, "team-a", 60, share("main", uuid(i), 1000)));
        }
        FitRequest request = fit("team-b", need("main", 500));

        assertThat(api.blocking.fit(request).getFeasible()).isFalse();
        FitResponse withVictim =
                api.blocking.fit(request.toBuilder().addIgnorePodUids("pod-3").build());
        assertThat(withVictim.getFeasible()).isTrue();
        assertThat(withVictim.getAssignments(0).getGpuUuidsList()).containsExactly(uuid(3));
    }

    @Test
    void fit_aVictimsTenantStaysWhereAnotherOfItsPodsRemains() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU, oneGpu());
        api.inventory.allocate(uuid(0), "team-x", 400, 32 * GIB);
        api.inventory.update(node -> node.withAllocations(List.of(
                new ContainerHolding("uid-1", "team-x", "a", "main", "team-x", uuid(0), 200, 16 * GIB, List.of()),
                new ContainerHolding("uid-2", "team-x", "b", "main", "team-x", uuid(0), 200, 16 * GIB, List.of()))));

        FitResponse oneVictim = api.blocking.fit(fit("team-y", need("main", 500)).toBuilder()
                .addIgnorePodUids("uid-1")
                .build());
        FitResponse both = api.blocking.fit(fit("team-y", need("main", 500)).toBuilder()
                .addIgnorePodUids("uid-1")
                .addIgnorePodUids("uid-2")
                .build());

        assertThat(oneVictim.getFeasible()).isFalse();
        assertThat(oneVictim.getReasonsList()).anyMatch(r -> r.getMessage().contains("team-x"));
        assertThat(both.getFeasible()).isTrue();
    }

    // ----- init containers -----

    @Test
    void fit_initContainerNeedsRoomOnlyByItself() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU, oneGpu());

        // init 1000 + two apps of 250: the pod needs 1000 (max), not 1500 (sum)
        FitResponse response = api.blocking.fit(fit("team-a", init("setup", 1000), need("a", 250), need("b", 250)));

        assertThat(response.getFeasible())
                .as("reasons: %s", response.getReasonsList())
                .isTrue();
        assertThat(response.getAssignmentsList())
                .extracting(ContainerAssignment::getName)
                .containsExactly("setup", "a", "b");
        assertThat(response.getAssignments(0).getGpuUuidsList()).containsExactly(uuid(0));
    }

    @Test
    void fit_initContainersRunOneAfterTheOther() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU, oneGpu());

        // two inits of 600 and an app of 1000: each init alone fits, as does the app
        FitResponse response = api.blocking.fit(fit("team-a", init("i1", 600), init("i2", 600), need("app", 1000)));

        assertThat(response.getFeasible()).isTrue();
    }

    @Test
    void fit_anInitContainerLargerThanWhatIsFreeRefusesThePod() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU, oneGpu());
        api.inventory.allocate(uuid(0), "team-a", 600, 48 * GIB);

        // the apps (250) fit in the 400 free, the init (1000) does not
        FitResponse response = api.blocking.fit(fit("team-a", init("setup", 1000), need("app", 250)));

        assertThat(response.getFeasible()).isFalse();
        assertThat(response.getReasonsList()).allMatch(r -> r.getContainer().equals("setup"));
    }

    // ----- node state: PCIe, tenant label, VF resources -----

    @Test
    void getNodeState_showsPcieTheTenantLabelAndVfResources() {
        InProcessSchedulerApi labelled = labelledApi(oneGpu().withHcas(List.of(new HcaSnapshot(
                "mlx5_2",
                "0000:19:00.0",
                0,
                "Ethernet",
                List.of("0000:19:00.2", "0000:19:00.3"),
                Set.of("0000:19:00.2", "0000:19:00.3"),
                List.of("max_tx_rate"),
                "0000:16:00.0",
                "omai.io/roce-vf"))));
        try {
            NodeState state = labelled.blocking.getNodeState(GetNodeStateRequest.getDefaultInstance());

            assertThat(state.getTenantLabel()).isEqualTo("omai.io/tenant");
            assertThat(state.getGpus(0).getPciAddress()).isEqualTo("0000:17:00.0");
            assertThat(state.getGpus(0).getPcieSwitch()).isEqualTo("0000:16:00.0");
            assertThat(state.getHcas(0).getPcieSwitch()).isEqualTo("0000:16:00.0");
            assertThat(state.getHcas(0).getResourceName()).isEqualTo("omai.io/roce-vf");
            assertThat(state.getHcas(0).getVfsFree()).isEqualTo(2);

            // the RoCE VFs are not InfiniBand VFs: {vfs: 1} (omai.io/ib-vf) does not fit, {vf_resource: roce} does
            FitResponse ib = labelled.blocking.fit(fit(
                    "team-a",
                    ContainerRequirement.newBuilder().setName("m").setVfs(1).build()));
            FitResponse roce = labelled.blocking.fit(fit(
                    "team-a",
                    ContainerRequirement.newBuilder()
                            .setName("m")
                            .setVfs(1)
                            .setVfResource("omai.io/roce-vf")
                            .build()));
            assertThat(ib.getFeasible()).isFalse();
            assertThat(ib.getReasons(0).getMessage()).isEqualTo("1 VF(s) needed, 0 free as omai.io/ib-vf");
            assertThat(roce.getFeasible()).isTrue();
            assertThat(roce.getAssignments(0).getVfIdsList()).containsExactly("0000:19:00.2");
        } finally {
            labelled.close();
        }
    }

    @Test
    void fit_refusesAMalformedVfResourceOrVictim() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);

        StatusRuntimeException badResource = failure(() -> api.blocking.fit(fit(
                "team-a",
                ContainerRequirement.newBuilder()
                        .setName("m")
                        .setVfs(1)
                        .setVfResource("no slash")
                        .build())));
        StatusRuntimeException badVictim = failure(() -> api.blocking.fit(fit("team-a", need("m", 100)).toBuilder()
                .addIgnorePodUids("../x")
                .build()));

        assertThat(badResource.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(badResource.getStatus().getDescription()).contains("containers[0].vf_resource");
        assertThat(badVictim.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(badVictim.getStatus().getDescription()).contains("ignore_pod_uids[0]");
    }

    /** An in-process API whose node state names the tenant label omai.io/tenant. */
    private static InProcessSchedulerApi labelledApi(NodeSnapshot node) {
        return new InProcessSchedulerApi(AntiAffinityPolicy.GPU, node, "omai.io/tenant");
    }

    @Test
    void reserveStillNeedsTheRightTenantAfterRenewal() {
        api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);
        api.blocking.reserve(reserve("k1", "pod-1", "team-a", 30, share("main", uuid(0), 500)));

        assertThatThrownBy(
                        () -> api.blocking.reserve(reserve("k1", "pod-1", "team-b", 60, share("main", uuid(0), 500))))
                .isInstanceOfSatisfying(
                        StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.ALREADY_EXISTS));
    }
}
