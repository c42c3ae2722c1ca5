package io.omai.agent.tenancy;

import static io.omai.agent.tenancy.TenancyNode.gpu;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.placement.AntiAffinityPolicy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * kubelet frees a departed container's devices at once and hands them out at the next admission, long before
 * PodResources reconciliation tells the ledger. The gate must count such an allocation as gone: its IDs are being
 * handed out again, so its container is.
 */
class DeviceReuseTest {
    @TempDir
    Path state;

    private TenancyNode node;

    @AfterEach
    void close() {
        if (node != null) {
            node.close();
        }
    }

    private TenancyNode unknownPods(int gpus, AntiAffinityPolicy policy) throws Exception {
        node = new TenancyNode(state, gpus, policy);
        node.pods.enabled = false; // no Kubernetes API: every pod is unknown
        node.ledger.keepDisplacedFilesFor(Duration.ZERO);
        return node;
    }

    private Path directory(Allocation allocation) {
        return state.resolve(AllocationLedger.ALLOCATIONS_DIR).resolve(allocation.id());
    }

    @ParameterizedTest
    @EnumSource(AntiAffinityPolicy.class)
    void aDepartedPodsSharesGoStraightToTheNextPod(AntiAffinityPolicy policy) throws Exception {
        unknownPods(1, policy);
        List<Allocation> four = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            four.add(node.admit("ns/p" + i + "/main", 250));
        }
        node.depart("ns/p1/main");

        Allocation next = node.admit("ns/q/main", 250);

        // the same IDs: the same allocation directory, made afresh for the new container
        assertThat(next.deviceIdStrings())
                .containsExactlyInAnyOrderElementsOf(four.get(1).deviceIdStrings());
        assertThat(next.owner()).isEqualTo("");
        assertThat(directory(next).resolve("control")).exists();
        assertThat(node.ledger.allocations()).hasSize(4);
    }

    @ParameterizedTest
    @EnumSource(AntiAffinityPolicy.class)
    void fiveHundredOverTwoDepartedPods(AntiAffinityPolicy policy) throws Exception {
        unknownPods(1, policy);
        List<Allocation> four = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            four.add(node.admit("ns/p" + i + "/main", 250));
        }
        node.depart("ns/p0/main");
        node.depart("ns/p2/main");

        Allocation next = node.admit("ns/big/main", 500);

        assertThat(next.milli()).isEqualTo(500);
        assertThat(node.ledger.allocations())
                .extracting(Allocation::id)
                .containsExactlyInAnyOrder(four.get(1).id(), four.get(3).id(), next.id());
        assertThat(directory(four.get(0))).doesNotExist();
        assertThat(directory(four.get(2))).doesNotExist();
    }

    @ParameterizedTest
    @EnumSource(AntiAffinityPolicy.class)
    void anotherTenantTakesTheGpuOfADepartedTenant(AntiAffinityPolicy policy) throws Exception {
        node = new TenancyNode(state, 1, policy);
        PodInfo a = node.pendingPod("a", "ns-a", "team-a", 1000, 10);
        node.admit(a);
        node.pods.byUid.remove("a");
        node.depart(a.ref() + "/main");
        PodInfo b = node.pendingPod("b", "ns-b", "team-b", 1000, 5);

        Allocation taken = node.admit(b);

        assertThat(taken.tenant()).isEqualTo("team-b");
        assertThat(node.ledger.allocations()).extracting(Allocation::tenant).containsExactly("team-b");
    }

    @Test
    void exactlyTheDevicesOfAPodTheInformerStillShowsGoToTheNewPodAsItsOwn() throws Exception {
        node = new TenancyNode(state, 1, AntiAffinityPolicy.GPU);
        PodInfo a = node.pendingPod("a", "ns-a", "team-a", 1000, 10);
        Allocation first = node.admit(a); // a runs now; the informer will show it a while after it is gone
        node.depart(a.ref() + "/main");
        PodInfo b = node.pendingPod("b", "ns-b", "team-b", 1000, 5);

        Allocation taken = node.admit(b);

        assertThat(taken.deviceIdStrings()).containsExactlyInAnyOrderElementsOf(first.deviceIdStrings());
        assertThat(taken.claim().podUid()).isEqualTo("b");
        assertThat(taken.tenant()).isEqualTo("team-b");
        assertThat(node.ledger.allocations()).extracting(Allocation::tenant).containsExactly("team-b");
    }

    @Test
    void aDisplacedAllocationsFilesStayForTheGracePeriodThenGo() throws Exception {
        unknownPods(1, AntiAffinityPolicy.GPU);
        node.ledger.keepDisplacedFilesFor(Duration.ofMillis(300));
        Allocation first = node.admit("ns/a/main", 500);
        node.depart("ns/a/main");

        Allocation second = node.gate.allocate(ids(0, 0, 300));

        assertThat(node.ledger.allocations()).extracting(Allocation::id).containsExactly(second.id());
        assertThat(directory(first).resolve("control")).exists(); // perhaps an init container yet to start
        org.awaitility.Awaitility.await()
                .atMost(Duration.ofSeconds(10))
                .until(() -> !java.nio.file.Files.exists(directory(first)));
        assertThat(directory(second).resolve("control")).exists();
    }

    @Test
    void aDepartedAllocationReusedInPartIsReleasedWhole() throws Exception {
        unknownPods(1, AntiAffinityPolicy.GPU);
        Allocation big = node.gate.allocate(ids(0, 0, 500));
        node.held.put("ns/big/main", ids(0, 0, 500));
        node.admit("ns/small/main", 250); // slots 500..749
        node.depart("ns/big/main");

        // 100 of the departed allocation's IDs and 150 never used: kubelet freed all 500 of them at once
        List<String> mixed = new ArrayList<>(ids(0, 0, 100));
        mixed.addAll(ids(0, 750, 150));
        Allocation next = node.gate.allocate(mixed);
        node.held.put("ns/next/main", mixed);

        assertThat(node.ledger.allocation(big.id())).isEmpty();
        assertThat(directory(big)).doesNotExist();
        // what the departed allocation's other 400 IDs held is free again: a 400 share fits beside 250 + 250
        Allocation after = node.admit("ns/after/main", 400);
        assertThat(after.milli()).isEqualTo(400);
        assertThat(next.milli()).isEqualTo(250);
    }

    /**
     * 200 admissions of random sizes (shares of 100..999, one or two whole GPUs) on 4 GPUs, with random departures
     * that the agent learns of only through the next Allocate: when kubelet follows the agent's preference,
     * nothing is ever refused, and every container kubelet believes holds devices has exactly its allocation.
     */
    @ParameterizedTest
    @EnumSource(AntiAffinityPolicy.class)
    void churnOfMixedSizesIsNeverRefused(AntiAffinityPolicy policy) throws Exception {
        unknownPods(4, policy);
        Random random = new Random(12);
        List<String> running = new ArrayList<>();
        for (int admission = 0; admission < 200; admission++) {
            int roll = random.nextInt(10);
            int size = roll < 7 ? 100 + random.nextInt(900) : roll < 9 ? 1000 : 2000;
            while (running.size() > 0 && (random.nextInt(3) == 0 || !kubeletCanFit(size))) {
                node.depart(running.remove(random.nextInt(running.size())));
            }
            String owner = "ns/p" + admission + "/main";
            node.admit(owner, size); // throws on a refusal
            running.add(owner);

            Map<String, Set<String>> allocated = new HashMap<>();
            node.ledger.allocations().forEach(a -> allocated.put(a.id(), new HashSet<>(a.deviceIdStrings())));
            for (var held : node.held.entrySet()) {
                assertThat(allocated.values())
                        .as("admission %d: %s", admission, held.getKey())
                        .contains(new HashSet<>(held.getValue()));
            }
        }
    }

    /** Whether kubelet's own free IDs can hold the size (else kubelet would not admit the pod). */
    private boolean kubeletCanFit(int size) {
        Map<String, Integer> freePerGpu = new HashMap<>();
        node.available().forEach(id -> freePerGpu.merge(MilliGpuId.parse(id).uuid(), 1, Integer::sum));
        if (size < 1000) {
            return freePerGpu.values().stream().anyMatch(free -> free >= size);
        }
        return freePerGpu.values().stream().filter(free -> free == 1000).count() >= size / 1000;
    }

    static List<String> ids(int gpu, int from, int count) {
        return IntStream.range(from, from + count)
                .mapToObj(slot -> new MilliGpuId(gpu(gpu), slot).id())
                .toList();
    }
}
