package io.omai.agent.tenancy;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.LedgerException;
import io.omai.placement.AntiAffinityPolicy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A seeded storm of pods of three tenants on a four-GPU node: schedulers reserve for some (and race: some
 * reservations are refused), kubelet admits the oldest pending pod through GetPreferredAllocation and Allocate
 * (with or without a reservation), pods are deleted, leases run out. After every step, no GPU (policy gpu) or
 * node (policy node) holds two tenants, counting allocations and outstanding reservations.
 */
class AntiAffinityStormTest {
    private static final List<String> TENANTS = List.of("team-a", "team-b", "team-c");
    private static final int[] SIZES = {100, 250, 300, 500, 1000};
    private static final int STEPS = 500;

    @TempDir
    Path state;

    @ParameterizedTest
    @EnumSource(
            value = AntiAffinityPolicy.class,
            names = {"GPU", "NODE"})
    void noTwoTenantsEverShareAGpuOrNode(AntiAffinityPolicy policy) throws Exception {
        Random random = new Random(20260301L);
        Map<String, Integer> outcomes = new HashMap<>();
        try (TenancyNode node = new TenancyNode(state, 4, policy)) {
            List<PodInfo> pending = new ArrayList<>();
            List<PodInfo> running = new ArrayList<>();
            int created = 0;
            for (int step = 0; step < STEPS; step++) {
                int action = random.nextInt(10);
                if (action < 4) {
                    node.clock.advance(Duration.ofSeconds(1)); // kubelet orders by creation time
                    PodInfo pod = node.pendingPod(
                            "p" + created++,
                            "ns-" + random.nextInt(5),
                            TENANTS.get(random.nextInt(TENANTS.size())),
                            SIZES[random.nextInt(SIZES.length)],
                            0);
                    pending.add(pod);
                    if (random.nextBoolean()) {
                        outcomes.merge(tryReserve(node, pod, random) ? "reserved" : "reserve_refused", 1, Integer::sum);
                    }
                } else if (action < 8 && !pending.isEmpty()) {
                    PodInfo oldest = pending.stream()
                            .min(Comparator.comparing(PodInfo::createdAt))
                            .orElseThrow();
                    pending.remove(oldest);
                    try {
                        node.admit(oldest);
                        running.add(oldest);
                        outcomes.merge("admitted", 1, Integer::sum);
                    } catch (AdmissionRefusal | LedgerException refused) {
                        // kubelet fails the pod (UnexpectedAdmissionError); its controller would recreate it
                        node.delete(oldest);
                        outcomes.merge("refused", 1, Integer::sum);
                    }
                } else if (action == 8 && !running.isEmpty()) {
                    node.delete(running.remove(random.nextInt(running.size())));
                    outcomes.merge("deleted", 1, Integer::sum);
                } else {
                    node.clock.advance(Duration.ofSeconds(random.nextInt(20)));
                }
                assertSeparated(node, policy, step);
            }
        }
        // liveness only (separation is asserted at every step): different tenants' same-size pods pending together
        // are refused, never guessed, so a storm of three tenants admits fewer than it asks
        assertThat(outcomes.getOrDefault("admitted", 0))
                .as("storm outcomes %s", outcomes)
                .isGreaterThan(25);
        assertThat(outcomes.getOrDefault("reserved", 0))
                .as("storm outcomes %s", outcomes)
                .isGreaterThan(10);
        assertThat(outcomes.getOrDefault("refused", 0) + outcomes.getOrDefault("reserve_refused", 0))
                .as("the storm must provoke refusals: %s", outcomes)
                .isGreaterThan(10);
    }

    /** A scheduler's try: GPUs in random order, the first that takes the reservation. */
    private static boolean tryReserve(TenancyNode node, PodInfo pod, Random random) {
        int milli = pod.gpuContainers().getFirst().milli();
        List<Integer> order = new ArrayList<>(List.of(0, 1, 2, 3));
        java.util.Collections.shuffle(order, random);
        for (int gpu : order) {
            try {
                node.reserve(pod, gpu, milli, 0, Duration.ofSeconds(5 + random.nextInt(30)));
                return true;
            } catch (ReservationException refused) {
                // capacity or anti-affinity: the next GPU
            }
        }
        return false;
    }

    private static void assertSeparated(TenancyNode node, AntiAffinityPolicy policy, int step) {
        Map<String, Set<String>> byGpu = new HashMap<>();
        for (Allocation allocation : node.ledger.allocations()) {
            for (String uuid : allocation.gpuUuids()) {
                byGpu.computeIfAbsent(uuid, u -> new TreeSet<>()).add(LedgerNodeCapacity.tenantOf(allocation));
            }
        }
        for (Reservation reservation : node.book.outstanding()) {
            for (ContainerReservation container : reservation.containers()) {
                for (String uuid : container.gpuUuids()) {
                    byGpu.computeIfAbsent(uuid, u -> new TreeSet<>()).add(reservation.tenant());
                }
            }
        }
        if (policy == AntiAffinityPolicy.GPU) {
            byGpu.forEach((uuid, tenants) -> assertThat(tenants)
                    .as("step %d: tenants on GPU %s", step, uuid)
                    .hasSizeLessThanOrEqualTo(1));
        } else {
            Set<String> onNode = new TreeSet<>();
            byGpu.values().forEach(onNode::addAll);
            assertThat(onNode).as("step %d: tenants on the node", step).hasSizeLessThanOrEqualTo(1);
        }
    }
}
