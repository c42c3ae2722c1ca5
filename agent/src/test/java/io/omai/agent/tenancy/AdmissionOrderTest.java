package io.omai.agent.tenancy;

import static io.omai.agent.tenancy.TenancyNode.gpu;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.ledger.Allocation;
import io.omai.placement.AntiAffinityPolicy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two pods of the same size pending on one node at once (issue #15 follow-up): kubelet admits them one at a time
 * in an order the agent cannot see, and names neither in GetPreferredAllocation or Allocate.
 */
class AdmissionOrderTest {
    private static final long GIB = 1L << 30;
    private static final Duration LEASE = Duration.ofMinutes(5);

    @TempDir
    Path state;

    private TenancyNode node;

    @AfterEach
    void close() {
        if (node != null) {
            node.close();
        }
    }

    private List<String> idsOn(int gpuIndex, int count) {
        return node.available().stream()
                .filter(id -> id.startsWith(gpu(gpuIndex)))
                .limit(count)
                .toList();
    }

    @Test
    void podsOfOneTenantAdmittedInTheOtherOrderWithTheFirstRunningAreBothAdmitted() throws Exception {
        node = new TenancyNode(state, 2, AntiAffinityPolicy.GPU);
        PodInfo x = node.pendingPod("x", "ns-a", "team-a", 300, 7);
        PodInfo y = node.pendingPod("y", "ns-a", "team-a", 300, 7);
        node.reserve(x, 0, 300, 4 * GIB, LEASE);
        node.reserve(y, 1, 300, 4 * GIB, LEASE);

        // kubelet admits y first; the agent cannot tell and takes x's reservation (right for anti-affinity)
        Allocation first = node.admit("ns-a/pod-y/main", 300);
        node.pods.running("y");
        // then x: its own reservation is spent, y's is left over and is x's in all but name
        Allocation second = node.admit("ns-a/pod-x/main", 300);
        node.pods.running("x");

        assertThat(first.gpuUuids()).containsExactly(gpu(0));
        assertThat(second.gpuUuids()).containsExactly(gpu(1));
        assertThat(List.of(first, second)).allSatisfy(a -> {
            assertThat(a.claim().tenant()).isEqualTo("team-a");
            assertThat(node.ledger.spec(a).devices().getFirst().memoryLimitBytes())
                    .isEqualTo(4 * GIB);
        });
        assertThat(second.claim().podUid()).isEqualTo("x");
        assertThat(node.book.outstanding()).as("both reservations consumed").isEmpty();
    }

    @Test
    void amongPodsOfOneTenantTheOneWhoseReservationCoversKubeletsIdsIsAdmitted() throws Exception {
        node = new TenancyNode(state, 2, AntiAffinityPolicy.GPU);
        PodInfo x = node.pendingPod("x", "ns-a", "team-a", 300, 7);
        PodInfo y = node.pendingPod("y", "ns-a", "team-a", 300, 7);
        node.reserve(x, 0, 300, 0, LEASE);
        node.reserve(y, 1, 300, 0, LEASE);

        // kubelet picked y's reserved GPU itself (topology, or a preference made for y)
        Allocation forY = node.gate.allocate(idsOn(1, 300));
        node.held.put("ns-a/pod-y/main", forY.deviceIdStrings());
        Allocation forX = node.gate.allocate(idsOn(0, 300));

        assertThat(forY.claim().podUid()).isEqualTo("y");
        assertThat(forX.claim().podUid()).isEqualTo("x");
        assertThat(node.book.outstanding()).isEmpty();
    }

    @Test
    void podsOfDifferentTenantsStayAmbiguousEvenWithReservationsOnDifferentGpus() throws Exception {
        node = new TenancyNode(state, 2, AntiAffinityPolicy.GPU);
        PodInfo x = node.pendingPod("x", "ns-a", "team-a", 300, 7);
        PodInfo y = node.pendingPod("y", "ns-b", "team-b", 300, 7);
        node.reserve(x, 0, 300, 0, LEASE);
        // the scheduler API keeps this case from arising: the second tenant's same-size reservation waits
        assertThatThrownBy(() -> node.reserve(y, 1, 300, 0, LEASE))
                .isInstanceOf(ReservationException.AdmissionWouldBeAmbiguous.class)
                .hasMessageContaining("tenant team-b")
                .hasMessageContaining("tenant team-a")
                .hasMessageContaining("retry after it is admitted");

        // bound anyway (another scheduler): whichever pod the agent steered kubelet to, the IDs would only echo
        // that guess
        assertThatThrownBy(() -> node.gate.preferredAllocation(node.available(), List.of(), 300))
                .isInstanceOf(AdmissionRefusal.Ambiguous.class)
                .hasMessageContaining("ns-a/pod-x")
                .hasMessageContaining("ns-b/pod-y")
                .hasMessageContaining("[team-a, team-b]")
                .hasMessageContaining("reservations cannot tell them apart");
        assertThatThrownBy(() -> node.gate.allocate(idsOn(1, 300)))
                .isInstanceOf(AdmissionRefusal.Ambiguous.class)
                .hasMessageContaining("reservations cannot tell them apart");
        assertThat(node.ledger.allocations()).isEmpty();
        assertThat(node.book.outstanding()).hasSize(1);
    }

    @Test
    void aFailedPodDoesNotTakeAPendingSiblingsAllocation() throws Exception {
        node = new TenancyNode(state, 2, AntiAffinityPolicy.GPU);
        PodInfo x = node.pendingPod("x", "ns-a", "team-a", 300, 60);
        node.admit("ns-a/pod-x/main", 300); // admitted; its containers have not started yet
        // a pod of the same tenant that kubelet refused at admission: Failed, never admitted
        node.pods.put(new PodInfo(
                "f",
                "ns-a",
                "pod-f",
                "team-a",
                false,
                x.createdAt(),
                List.of(new PodInfo.GpuContainer("main", 300)),
                false));
        node.pendingPod("z", "ns-b", "team-b", 300, 5);

        Allocation forZ = node.gate.allocate(idsOn(1, 300));
        assertThat(forZ.claim().podUid())
                .as("x is not pending again for another tenant's pod")
                .isEqualTo("z");
    }
}
