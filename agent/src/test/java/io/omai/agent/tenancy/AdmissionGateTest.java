package io.omai.agent.tenancy;

import static io.omai.agent.tenancy.TenancyNode.gpu;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.placement.AntiAffinityPolicy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AdmissionGateTest {
    private static final long GIB = 1L << 30;

    @TempDir
    Path state;

    private TenancyNode node;

    @AfterEach
    void close() {
        if (node != null) {
            node.close();
        }
    }

    private TenancyNode node(int gpus, AntiAffinityPolicy policy) throws Exception {
        node = new TenancyNode(state, gpus, policy);
        return node;
    }

    @Test
    void aReservedPodGetsExactlyTheReservedGpuAndItsMemoryQuota() throws Exception {
        node(4, AntiAffinityPolicy.GPU);
        PodInfo pod = node.pendingPod("u1", "ns-a", "team-a", 300, 10);
        node.reserve(pod, 2, 300, 5 * GIB, Duration.ofSeconds(30));

        List<MilliGpuId> preferred = node.gate.preferredAllocation(node.available(), List.of(), 300);
        assertThat(preferred).hasSize(300).allMatch(id -> id.uuid().equals(gpu(2)));

        Allocation allocation = node.admit(pod);
        assertThat(allocation.gpuUuids()).containsExactly(gpu(2));
        assertThat(allocation.claim().podUid()).isEqualTo("u1");
        assertThat(allocation.claim().tenant()).isEqualTo("team-a");
        assertThat(allocation.claim().container()).isEqualTo("main");
        assertThat(node.ledger.spec(allocation).devices().getFirst().memoryLimitBytes())
                .isEqualTo(5 * GIB);
        assertThat(node.book.forPod("u1")).as("consumed").isEmpty();
    }

    @Test
    void allocateRefusesIdsOutsideThePodsReservation() throws Exception {
        node(4, AntiAffinityPolicy.GPU);
        PodInfo pod = node.pendingPod("u1", "ns-a", "team-a", 300, 10);
        node.reserve(pod, 2, 300, 0, Duration.ofSeconds(30));
        List<String> elsewhere = node.available().stream()
                .filter(id -> id.startsWith(gpu(0)))
                .limit(300)
                .toList();

        assertThatThrownBy(() -> node.gate.allocate(elsewhere))
                .isInstanceOf(AdmissionRefusal.NotReserved.class)
                .hasMessageContaining("ns-a/pod-u1")
                .hasMessageContaining("key-u1")
                .hasMessageContaining(gpu(2))
                .hasMessageContaining(gpu(0));
        assertThat(node.ledger.allocations()).isEmpty();
        assertThat(node.book.forPod("u1")).as("kept for the right IDs").isPresent();
    }

    @Test
    void withoutAReservationOtherTenantsGpusAreNotOfferedAndAllocateRefusesThem() throws Exception {
        node(2, AntiAffinityPolicy.GPU);
        node.admit(node.pendingPod("a1", "ns-a", "team-a", 500, 20));
        String teamAGpu = node.ledger.allocations().getFirst().gpuUuids().getFirst();

        PodInfo b = node.pendingPod("b1", "ns-b", "team-b", 200, 10);
        List<MilliGpuId> preferred = node.gate.preferredAllocation(node.available(), List.of(), 200);
        assertThat(preferred).noneMatch(id -> id.uuid().equals(teamAGpu));

        List<String> onTeamAGpu = node.available().stream()
                .filter(id -> id.startsWith(teamAGpu))
                .limit(200)
                .toList();
        assertThatThrownBy(() -> node.gate.allocate(onTeamAGpu))
                .isInstanceOf(AdmissionRefusal.AntiAffinity.class)
                .hasMessageContaining("ns-b/pod-b1")
                .hasMessageContaining("'team-b'")
                .hasMessageContaining("'team-a'")
                .hasMessageContaining(teamAGpu);
        assertThat(node.admit(b).gpuUuids()).doesNotContain(teamAGpu);
    }

    @Test
    void theSameTenantSharesAGpu() throws Exception {
        node(1, AntiAffinityPolicy.GPU);
        node.admit(node.pendingPod("a1", "ns-a", "team-a", 500, 20));
        Allocation second = node.admit(node.pendingPod("a2", "ns-a2", "team-a", 400, 10));
        assertThat(second.gpuUuids()).containsExactly(gpu(0));
    }

    @Test
    void nodePolicyKeepsASecondTenantOffTheWholeNode() throws Exception {
        node(4, AntiAffinityPolicy.NODE);
        node.admit(node.pendingPod("a1", "ns-a", "team-a", 500, 20));
        node.pendingPod("b1", "ns-b", "team-b", 500, 10);

        assertThatThrownBy(() -> node.gate.preferredAllocation(node.available(), List.of(), 500))
                .isInstanceOf(AdmissionRefusal.AntiAffinity.class)
                .hasMessageContaining("ns-b/pod-b1")
                .hasMessageContaining("policy node");
        List<String> freeGpu = node.available().stream()
                .filter(id -> id.startsWith(gpu(3)))
                .limit(500)
                .toList();
        assertThatThrownBy(() -> node.gate.allocate(freeGpu))
                .isInstanceOf(AdmissionRefusal.AntiAffinity.class)
                .hasMessageContaining("policy node")
                .hasMessageContaining(TenancyNode.NODE)
                .hasMessageContaining("'team-a'")
                .hasMessageContaining("'team-b'");
    }

    @Test
    void pendingPodsOfDifferentTenantsAreRefusedEvenWhenOneIsOlder() throws Exception {
        // kubelet admits oldest first only within one batch: a younger pod delivered first is admitted first, so
        // "the oldest" would put team-b's container on a GPU checked for team-a
        node(2, AntiAffinityPolicy.GPU);
        node.pendingPod("young", "ns-b", "team-b", 300, 5);
        node.pendingPod("old", "ns-a", "team-a", 300, 50);
        node.pendingPod("other-size", "ns-c", "team-c", 200, 500);

        assertThatThrownBy(() ->
                        node.gate.allocate(node.available().stream().limit(300).toList()))
                .isInstanceOf(AdmissionRefusal.Ambiguous.class)
                .hasMessageContaining("ns-a/pod-old")
                .hasMessageContaining("ns-b/pod-young")
                .hasMessageNotContaining("pod-other-size");
        assertThat(node.ledger.allocations()).isEmpty();
    }

    @Test
    void theOldestPendingPodOfOneTenantIsTheOneBeingAdmitted() throws Exception {
        node(2, AntiAffinityPolicy.GPU);
        node.pendingPod("young", "ns-a", "team-a", 300, 5);
        node.pendingPod("old", "ns-a", "team-a", 300, 50);
        node.pendingPod("other-size", "ns-c", "team-c", 200, 500);

        Allocation allocation =
                node.gate.allocate(node.available().stream().limit(300).toList());
        assertThat(allocation.claim().podUid()).isEqualTo("old");
        assertThat(allocation.claim().tenant()).isEqualTo("team-a");
    }

    @Test
    void pendingPodsOfDifferentTenantsCreatedTogetherAreRefusedNotGuessed() throws Exception {
        node(2, AntiAffinityPolicy.GPU);
        node.pendingPod("x", "ns-a", "team-a", 300, 7);
        node.pendingPod("y", "ns-b", "team-b", 300, 7);

        assertThatThrownBy(() -> node.gate.preferredAllocation(node.available(), List.of(), 300))
                .isInstanceOf(AdmissionRefusal.Ambiguous.class)
                .hasMessageContaining("ns-a/pod-x")
                .hasMessageContaining("ns-b/pod-y")
                .hasMessageContaining("[team-a, team-b]");
        assertThatThrownBy(() ->
                        node.gate.allocate(node.available().stream().limit(300).toList()))
                .isInstanceOf(AdmissionRefusal.Ambiguous.class);
        assertThat(node.ledger.allocations()).isEmpty();
    }

    @Test
    void pendingPodsOfOneTenantCreatedTogetherAreSafeToTellApartByName() throws Exception {
        node(2, AntiAffinityPolicy.GPU);
        node.pendingPod("x", "ns-a", "team-a", 300, 7);
        node.pendingPod("y", "ns-a", "team-a", 300, 7);

        Allocation allocation =
                node.gate.allocate(node.available().stream().limit(300).toList());
        assertThat(allocation.claim().tenant()).isEqualTo("team-a");
    }

    @Test
    void withAnEnabledPodSourceAnUnknownPodIsRefused() throws Exception {
        node(1, AntiAffinityPolicy.GPU);
        assertThatThrownBy(() ->
                        node.gate.allocate(node.available().stream().limit(100).toList()))
                .isInstanceOf(AdmissionRefusal.Unidentified.class)
                .hasMessageContaining("no pending pod on node " + TenancyNode.NODE)
                .hasMessageContaining("100 milli-GPU");
    }

    @Test
    void withoutTheKubernetesApiAReservationIdentifiesThePodAndUnknownPodsShareOnlyWithEachOther() throws Exception {
        node(2, AntiAffinityPolicy.GPU);
        node.pods.enabled = false;
        Allocation unknown = node.gate.allocate(node.available().stream()
                .filter(id -> id.startsWith(gpu(0)))
                .limit(100)
                .toList());
        assertThat(unknown.claim().tenant()).isEmpty();

        PodInfo elsewhere = new PodInfo("r1", "", "", "team-a", true, node.clock.instant(), List.of());
        assertThatThrownBy(() -> node.reserve(elsewhere, 0, 200, 0, Duration.ofSeconds(30)))
                .as("a known tenant may not reserve beside an unknown pod")
                .isInstanceOf(ReservationException.AntiAffinityViolation.class)
                .hasMessageContaining(TenantIdentity.UNKNOWN);
        node.reserve(elsewhere, 1, 200, 0, Duration.ofSeconds(30));
        Allocation reserved = node.gate.allocate(node.available().stream()
                .filter(id -> id.startsWith(gpu(1)))
                .limit(200)
                .toList());
        assertThat(reserved.claim().podUid()).isEqualTo("r1");
        assertThat(reserved.claim().tenant()).isEqualTo("team-a");
    }

    @Test
    void aReservationHeldForAnotherPodIsNotHandedToAnUnreservedOne() throws Exception {
        node(1, AntiAffinityPolicy.GPU);
        PodInfo reserved = node.pendingPod("r", "ns-a", "team-a", 800, 1);
        node.reserve(reserved, 0, 800, 0, Duration.ofSeconds(30));
        node.pendingPod("u", "ns-a2", "team-a", 300, 60);

        assertThatThrownBy(() -> node.gate.preferredAllocation(node.available(), List.of(), 300))
                .isInstanceOf(LedgerException.NoFit.class)
                .hasMessageContaining("=200");
        assertThatThrownBy(() ->
                        node.gate.allocate(node.available().stream().limit(300).toList()))
                .isInstanceOf(AdmissionRefusal.ReservedForOthers.class)
                .hasMessageContaining("300 milli requested, 200 free")
                .hasMessageContaining("key-r");
    }

    @Test
    void anExpiredReservationNoLongerSteersThePod() throws Exception {
        node(4, AntiAffinityPolicy.GPU);
        PodInfo pod = node.pendingPod("u1", "ns-a", "team-a", 300, 10);
        node.reserve(pod, 3, 300, 0, Duration.ofSeconds(5));
        node.clock.advance(Duration.ofSeconds(6));

        Allocation allocation = node.admit(pod);
        assertThat(allocation.claim().podUid()).isEqualTo("u1");
        assertThat(node.book.outstanding()).isEmpty();
    }

    @Test
    void withdrawnGpusAreNeitherOfferedNorAllocated() throws Exception {
        node(2, AntiAffinityPolicy.GPU);
        node.withdrawals.replace(Map.of(gpu(0), "kubelet reports it as nvidia.com/gpu"));
        node.pendingPod("a1", "ns-a", "team-a", 500, 20);

        assertThat(node.gate.preferredAllocation(node.available(), List.of(), 500))
                .allMatch(id -> id.uuid().equals(gpu(1)));
        List<String> onWithdrawn = node.available().stream()
                .filter(id -> id.startsWith(gpu(0)))
                .limit(500)
                .toList();
        assertThatThrownBy(() -> node.gate.allocate(onWithdrawn))
                .isInstanceOf(AdmissionRefusal.Withdrawn.class)
                .hasMessageContaining(gpu(0))
                .hasMessageContaining("nvidia.com/gpu");
    }

    @Test
    void aPodsContainersConsumeItsReservationOneByOneInKubeletsOrder() throws Exception {
        node(4, AntiAffinityPolicy.GPU);
        PodInfo pod = new PodInfo(
                "m1",
                "ns-a",
                "multi",
                "team-a",
                true,
                node.clock.instant().minusSeconds(5),
                List.of(new PodInfo.GpuContainer("init", 100), new PodInfo.GpuContainer("main", 1000)));
        node.pods.put(pod);
        node.book.reserve(new ReservationRequest(
                "key-m1",
                "m1",
                "team-a",
                List.of(
                        new ContainerReservation("init", List.of(gpu(1)), 100, 0, List.of()),
                        new ContainerReservation("main", List.of(gpu(3)), 1000, 0, List.of())),
                Duration.ofSeconds(30)));

        List<String> init = node.gate.preferredAllocation(node.available(), List.of(), 100).stream()
                .map(MilliGpuId::id)
                .toList();
        Allocation first = node.gate.allocate(init);
        assertThat(first.gpuUuids()).containsExactly(gpu(1));
        assertThat(first.claim().container()).isEqualTo("init");
        assertThat(node.book.forPod("m1").orElseThrow().containers())
                .extracting(ContainerReservation::name)
                .as("the rest still counts")
                .containsExactly("main");
        node.held.put("ns-a/multi/init", init);

        List<String> main = node.gate.preferredAllocation(node.available(), List.of(), 1000).stream()
                .map(MilliGpuId::id)
                .toList();
        Allocation second = node.gate.allocate(main);
        assertThat(second.gpuUuids()).containsExactly(gpu(3));
        assertThat(second.claim().container()).isEqualTo("main");
        assertThat(node.book.forPod("m1")).isEmpty();
    }

    @Test
    void aRepeatedAllocateReturnsTheSameAllocation() throws Exception {
        node(1, AntiAffinityPolicy.GPU);
        node.pendingPod("a1", "ns-a", "team-a", 250, 20);
        List<String> ids = node.available().stream().limit(250).toList();
        Allocation first = node.gate.allocate(ids);
        node.pods.running("a1");

        assertThat(node.gate.allocate(ids)).isEqualTo(first);
    }
}
