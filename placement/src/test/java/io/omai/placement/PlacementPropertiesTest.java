package io.omai.placement;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * The placement model's invariants over random nodes and demands (docs/architecture.md "Placement model"). Nodes
 * have 1-8 GPUs on NUMA nodes 0, 1 or unknown, any load (often one milli either side of what a share needs;
 * sometimes a little over-full, as a buggy caller might pass), tenants a/b/c, some unhealthy, and 0-2 HCAs; demands have 1-3 containers of shares, whole GPUs and VFs.
 */
class PlacementPropertiesTest {
    private static final long GIB = 1L << 30;
    private static final int TRIES = 300;

    record Case(NodeState node, String tenant, List<ContainerDemand> demand, AntiAffinityPolicy policy, long seed) {
        Plan plan() {
            return Planner.plan(node, tenant, demand, policy, GpuCondition.ANY);
        }
    }

    @Property(tries = TRIES)
    void neverOverAThousandMilliNorOverTheCardsMemory(@ForAll("cases") Case c) {
        Plan plan = c.plan();
        Map<String, Integer> milli = new HashMap<>();
        Map<String, Long> memory = new HashMap<>();
        for (Plan.Placement p : plan.placements()) {
            for (String uuid : p.gpuUuids()) {
                GpuState gpu = c.node().gpu(uuid).orElseThrow();
                milli.merge(uuid, MilliGpu.perGpu(p.milli()), Integer::sum);
                memory.merge(uuid, demandOf(c, p).memoryOn(gpu), Long::sum);
            }
        }
        milli.forEach((uuid, added) -> {
            GpuState gpu = c.node().gpu(uuid).orElseThrow();
            assertThat(gpu.milliUsed() + added).as("milli on %s", uuid).isLessThanOrEqualTo(MilliGpu.PER_GPU);
            assertThat(gpu.memoryUsedBytes() + memory.get(uuid))
                    .as("memory on %s", uuid)
                    .isLessThanOrEqualTo(gpu.memoryBytes());
            assertThat(gpu.healthy()).as("%s is healthy", uuid).isTrue();
        });
    }

    @Property(tries = TRIES)
    void neverTwoTenantsOnAGpuUnderPolicyGpuNorOnANodeUnderPolicyNode(@ForAll("cases") Case c) {
        Plan plan = c.plan();
        for (Plan.Placement p : plan.placements()) {
            for (String uuid : p.gpuUuids()) {
                if (c.policy() == AntiAffinityPolicy.GPU) {
                    assertThat(c.node().gpu(uuid).orElseThrow().tenants())
                            .as("tenants already on %s", uuid)
                            .isSubsetOf(c.tenant());
                }
                if (c.policy() == AntiAffinityPolicy.NODE) {
                    assertThat(c.node().tenants())
                            .as("tenants already on the node")
                            .isSubsetOf(c.tenant());
                }
            }
        }
    }

    @Property(tries = TRIES)
    void neverASplitShareAndWholeGpusAreWholeAndDistinct(@ForAll("cases") Case c) {
        Plan plan = c.plan();
        if (!plan.feasible()) {
            assertThat(plan.placements()).isEmpty();
            assertThat(plan.refusals()).isNotEmpty();
            return;
        }
        assertThat(plan.placements()).hasSameSizeAs(c.demand());
        Set<String> givenWhole = new HashSet<>();
        Set<String> shared = new HashSet<>();
        Set<String> vfs = new HashSet<>();
        for (int i = 0; i < plan.placements().size(); i++) {
            Plan.Placement p = plan.placements().get(i);
            ContainerDemand d = c.demand().get(i);
            assertThat(p.container()).isEqualTo(d.name());
            assertThat(p.gpuUuids()).doesNotHaveDuplicates().hasSize(d.gpuCount());
            assertThat(p.vfIds()).doesNotHaveDuplicates().hasSize(d.vfs());
            for (String vf : p.vfIds()) {
                assertThat(vfs.add(vf)).as("VF %s handed out once", vf).isTrue();
            }
            if (MilliGpu.isShare(d.milli())) {
                shared.addAll(p.gpuUuids());
            } else {
                for (String uuid : p.gpuUuids()) {
                    assertThat(c.node().gpu(uuid).orElseThrow().untouched())
                            .as("%s was entirely free", uuid)
                            .isTrue();
                    assertThat(givenWhole.add(uuid))
                            .as("%s given whole once", uuid)
                            .isTrue();
                }
            }
        }
        assertThat(Collections.disjoint(givenWhole, shared))
                .as("GPUs given whole %s and shared %s", givenWhole, shared)
                .isTrue();
    }

    @Property(tries = TRIES)
    void wholeGpusOnOneNumaNodeWhenOneCanHoldThem(@ForAll("cases") Case c) {
        int count = 1 + (int) (c.seed() & 3);
        ContainerDemand whole = new ContainerDemand("train", count * MilliGpu.PER_GPU, 0, 0);
        Plan plan = Planner.plan(c.node(), c.tenant(), List.of(whole), c.policy(), GpuCondition.ANY);
        Map<Integer, Integer> eligibleByNuma = new HashMap<>();
        for (GpuState gpu : c.node().gpus()) {
            boolean eligible = gpu.healthy()
                    && gpu.untouched()
                    && gpu.memoryBytes() >= 0
                    && c.policy()
                            .refusal(
                                    c.tenant(),
                                    gpu.uuid(),
                                    gpu.tenants(),
                                    "",
                                    c.node().tenants())
                            .isEmpty();
            if (eligible && gpu.numaKnown()) {
                eligibleByNuma.merge(gpu.numaNode(), 1, Integer::sum);
            }
        }
        boolean oneNodeCan = eligibleByNuma.values().stream().anyMatch(n -> n >= count);
        if (oneNodeCan) {
            assertThat(plan.feasible()).isTrue();
            assertThat(plan.placements().getFirst().gpuUuids().stream()
                            .map(uuid -> c.node().gpu(uuid).orElseThrow().numaNode())
                            .distinct())
                    .as("NUMA nodes of the chosen GPUs")
                    .hasSize(1);
        }
    }

    @Property(tries = TRIES)
    void theSameStateGivesTheSameAnswerWhateverOrderItIsListedIn(@ForAll("cases") Case c) {
        Random random = new Random(c.seed());
        List<GpuState> gpus = new ArrayList<>(c.node().gpus());
        Collections.shuffle(gpus, random);
        List<HcaState> hcas = new ArrayList<>(c.node().hcas());
        Collections.shuffle(hcas, random);
        NodeState sameNode = new NodeState(c.node().nodeName(), gpus, hcas);

        Plan first = c.plan();
        Plan again = Planner.plan(sameNode, c.tenant(), List.copyOf(c.demand()), c.policy(), GpuCondition.ANY);

        assertThat(sameNode).isEqualTo(c.node());
        assertThat(again).isEqualTo(first);
    }

    @Property(tries = TRIES)
    void aShareGoesToAGpuWithTheLeastFreeMilliThatTakesIt(@ForAll("cases") Case c) {
        ContainerDemand share = new ContainerDemand("infer", 1 + (int) (c.seed() % 999 + 999) % 999, 0, 0);
        Plan plan = Planner.plan(c.node(), c.tenant(), List.of(share), c.policy(), GpuCondition.ANY);
        if (!plan.feasible()) {
            return;
        }
        GpuState chosen =
                c.node().gpu(plan.placements().getFirst().gpuUuids().getFirst()).orElseThrow();
        for (GpuState other : c.node().gpus()) {
            boolean couldTakeIt = other.healthy()
                    && c.policy()
                            .refusal(
                                    c.tenant(),
                                    other.uuid(),
                                    other.tenants(),
                                    "",
                                    c.node().tenants())
                            .isEmpty()
                    && PlacementRules.capacityShortfall(other, share.milli(), share.memoryOn(other))
                            .isEmpty();
            if (couldTakeIt) {
                assertThat(chosen.milliFree())
                        .as("free milli of %s against %s", chosen.uuid(), other.uuid())
                        .isLessThanOrEqualTo(other.milliFree());
            }
        }
    }

    private static ContainerDemand demandOf(Case c, Plan.Placement placement) {
        return c.demand().stream()
                .filter(d -> d.name().equals(placement.container()))
                .findFirst()
                .orElseThrow();
    }

    @Provide
    Arbitrary<Case> cases() {
        return Combinators.combine(
                        nodes(),
                        Arbitraries.of("a", "b", "c"),
                        demands(),
                        Arbitraries.of(AntiAffinityPolicy.class),
                        Arbitraries.longs())
                .as(Case::new);
    }

    private static Arbitrary<NodeState> nodes() {
        Arbitrary<List<GpuState>> gpus = gpu().list().ofMinSize(1).ofMaxSize(8).map(list -> {
            List<GpuState> indexed = new ArrayList<>();
            for (int i = 0; i < list.size(); i++) {
                GpuState g = list.get(i);
                indexed.add(new GpuState(
                        "GPU-" + i,
                        i,
                        g.numaNode(),
                        "",
                        g.healthy(),
                        g.healthReason(),
                        g.memoryBytes(),
                        g.milliUsed(),
                        g.memoryUsedBytes(),
                        g.tenants()));
            }
            return indexed;
        });
        Arbitrary<List<HcaState>> hcas = Combinators.combine(
                        Arbitraries.integers().between(-1, 1),
                        Arbitraries.integers().between(0, 4),
                        Arbitraries.integers().between(0, 4))
                .as((numa, vfs, free) -> new int[] {numa, vfs, free})
                .list()
                .ofMaxSize(2)
                .map(specs -> {
                    List<HcaState> list = new ArrayList<>();
                    for (int h = 0; h < specs.size(); h++) {
                        List<String> vfs = new ArrayList<>();
                        for (int v = 0; v < specs.get(h)[1]; v++) {
                            vfs.add("vf-" + h + "-" + v);
                        }
                        list.add(new HcaState(
                                "mlx5_" + h,
                                specs.get(h)[0],
                                vfs,
                                Set.copyOf(vfs.subList(0, Math.min(specs.get(h)[2], vfs.size())))));
                    }
                    return list;
                });
        return Combinators.combine(gpus, hcas).as((g, h) -> new NodeState("node-a", g, h));
    }

    private static Arbitrary<GpuState> gpu() {
        Arbitrary<Integer> used = Arbitraries.oneOf(
                Arbitraries.of(0, 0, 0, 250, 500, 501, 750, 751, 900, 901, 1000),
                Arbitraries.integers().between(0, 1010));
        Arbitrary<Set<String>> tenants = Arbitraries.of("a", "b", "c").set().ofMaxSize(2);
        return Combinators.combine(
                        Arbitraries.of(-1, 0, 0, 1, 1),
                        Arbitraries.of(true, true, true, false),
                        Arbitraries.of(16 * GIB, 40 * GIB, 80 * GIB),
                        used,
                        tenants,
                        Arbitraries.of(true, false))
                .as((numa, healthy, memory, milli, who, proportional) -> new GpuState(
                        "GPU",
                        0,
                        numa,
                        "",
                        healthy,
                        healthy ? "" : "XID 79",
                        memory,
                        milli,
                        milli == 0 ? 0 : proportional ? MilliGpu.defaultMemory(Math.min(milli, 999), memory) : GIB,
                        milli == 0 ? Set.of() : who));
    }

    private static Arbitrary<List<ContainerDemand>> demands() {
        Arbitrary<ContainerDemand> container = Combinators.combine(
                        Arbitraries.of(0, 100, 250, 500, 999, 1000, 2000, 3000),
                        Arbitraries.of(0L, 0L, GIB, 20 * GIB),
                        Arbitraries.integers().between(0, 2))
                .as((milli, memory, vfs) -> new ContainerDemand("c", milli, milli == 0 ? 0 : memory, vfs));
        return container.list().ofMinSize(1).ofMaxSize(3).map(list -> {
            List<ContainerDemand> named = new ArrayList<>();
            for (int i = 0; i < list.size(); i++) {
                ContainerDemand d = list.get(i);
                named.add(new ContainerDemand("c" + i, d.milli(), d.memoryBytes(), d.vfs()));
            }
            return named;
        });
    }
}
