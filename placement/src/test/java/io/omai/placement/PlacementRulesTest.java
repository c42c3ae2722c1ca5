package io.omai.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The rules on hand-made nodes: each tie-break and refusal as docs/architecture.md states it. */
class PlacementRulesTest {
    private static final long GIB = 1L << 30;

    private static GpuState gpu(int index, int numa, int milliUsed) {
        return new GpuState(
                "GPU-" + index,
                index,
                numa,
                "",
                true,
                "",
                80 * GIB,
                milliUsed,
                MilliGpu.defaultMemory(milliUsed, 80 * GIB),
                milliUsed == 0 ? Set.of() : Set.of("a"));
    }

    private static List<String> uuids(List<GpuState> gpus) {
        return gpus.stream().map(GpuState::uuid).toList();
    }

    @Test
    void aShareGoesToTheFullestGpuThatStillTakesIt() {
        NodeState node = new NodeState("n", List.of(gpu(0, 0, 200), gpu(1, 0, 600), gpu(2, 1, 0)), List.of());

        assertThat(PlacementRules.shareTarget(node.gpus(), node))
                .map(GpuState::uuid)
                .contains("GPU-1");
    }

    @Test
    void amongEquallyFullGpusTheShareGoesToTheFullerNumaNodeNotTheLowerIndex() {
        // GPU-1 (NUMA 0) and GPU-2 (NUMA 1) are equally full; NUMA 1 has less free in all, so GPU-2 wins
        NodeState node =
                new NodeState("n", List.of(gpu(0, 0, 0), gpu(1, 0, 400), gpu(2, 1, 400), gpu(3, 1, 900)), List.of());
        List<GpuState> candidates = List.of(node.gpus().get(1), node.gpus().get(2));

        assertThat(PlacementRules.shareTarget(candidates, node))
                .map(GpuState::uuid)
                .contains("GPU-2");
    }

    @Test
    void equallyFullGpusOnEquallyFullNodesGoByLowestIndex() {
        NodeState node = new NodeState("n", List.of(gpu(5, 1, 300), gpu(4, 0, 300)), List.of());

        assertThat(PlacementRules.shareTarget(node.gpus(), node))
                .map(GpuState::uuid)
                .contains("GPU-4");
    }

    @Test
    void wholeGpusComeFromTheNumaNodeWithFewestThatSuffice() {
        List<GpuState> free = List.of(gpu(0, 0, 0), gpu(1, 0, 0), gpu(2, 0, 0), gpu(4, 1, 0), gpu(5, 1, 0));

        assertThat(uuids(PlacementRules.wholeGpus(free, 2, Set.of()))).containsExactly("GPU-4", "GPU-5");
        assertThat(uuids(PlacementRules.wholeGpus(free, 3, Set.of()))).containsExactly("GPU-0", "GPU-1", "GPU-2");
    }

    @Test
    void wholeGpusFollowTheRequiredGpusNode() {
        List<GpuState> free = List.of(gpu(0, 0, 0), gpu(1, 0, 0), gpu(2, 0, 0), gpu(4, 1, 0), gpu(5, 1, 0));

        assertThat(uuids(PlacementRules.wholeGpus(free, 2, Set.of("GPU-1")))).containsExactly("GPU-0", "GPU-1");
    }

    @Test
    void whenNoNodeSufficesWholeGpusSpanAsFewNodesAsPossible() {
        // two free on NUMA 0, three on NUMA 1: four GPUs take all of NUMA 1 and one of NUMA 0, not the lowest indices
        List<GpuState> free = List.of(gpu(2, 0, 0), gpu(3, 0, 0), gpu(5, 1, 0), gpu(6, 1, 0), gpu(7, 1, 0));

        assertThat(uuids(PlacementRules.wholeGpus(free, 4, Set.of())))
                .containsExactly("GPU-2", "GPU-5", "GPU-6", "GPU-7");
    }

    @Test
    void gpusOfUnknownNumaAreNeverCalledOneNode() {
        List<GpuState> free = List.of(gpu(0, -1, 0), gpu(1, -1, 0), gpu(2, 0, 0), gpu(3, 0, 0), gpu(4, 0, 0));

        assertThat(uuids(PlacementRules.wholeGpus(free, 2, Set.of()))).containsExactly("GPU-2", "GPU-3");
    }

    @Test
    void tooFewCandidatesOrAMissingRequiredGpuIsNoAnswer() {
        List<GpuState> free = List.of(gpu(0, 0, 0), gpu(1, 0, 0));

        assertThat(PlacementRules.wholeGpus(free, 3, Set.of())).isEmpty();
        assertThat(PlacementRules.wholeGpus(free, 1, Set.of("GPU-9"))).isEmpty();
        assertThat(PlacementRules.wholeGpus(free, 1, Set.of("GPU-0", "GPU-1"))).isEmpty();
    }

    @Test
    void aWholeGpuNeedsAnUntouchedOneAndASharesMilliAndMemoryMustBeFree() {
        GpuState used = gpu(0, 0, 300);

        assertThat(PlacementRules.capacityShortfall(used, 1000, 80 * GIB))
                .hasValueSatisfying(why -> assertThat(why).contains("whole GPU was requested but 300 milli"));
        assertThat(PlacementRules.capacityShortfall(used, 701, GIB)).contains("701 milli requested, 700 free");
        assertThat(PlacementRules.capacityShortfall(used, 700, 60 * GIB))
                .hasValueSatisfying(why -> assertThat(why).contains("of memory requested"));
        assertThat(PlacementRules.capacityShortfall(used, 700, MilliGpu.defaultMemory(700, 80 * GIB)))
                .isEmpty();
        assertThatThrownBy(() -> PlacementRules.capacityShortfall(used, 0, 0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("outside 1..1000");
    }

    @Test
    void vfsOnTheGpusNumaNodeComeFirst() {
        List<HcaState> hcas = List.of(
                new HcaState("mlx5_0", 0, List.of("a0", "a1"), Set.of("a0", "a1")),
                new HcaState("mlx5_1", 1, List.of("b0", "b1"), Set.of("b1")));

        assertThat(PlacementRules.vfs(hcas, Set.of("a0", "a1", "b1"), 2, 1)).containsExactly("b1", "a0");
        assertThat(PlacementRules.vfs(hcas, Set.of("a0", "a1", "b1"), 5, -1)).containsExactly("a0", "a1", "b1");
    }

    @Test
    void nodeStateRefusesAmbiguousInput() {
        assertThatThrownBy(() -> new NodeState("n", List.of(gpu(0, 0, 0), gpu(0, 1, 0)), List.of()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("GPU GPU-0 listed twice");
        assertThatThrownBy(() -> new NodeState(
                        "n",
                        List.of(gpu(0, 0, 0), new GpuState("GPU-x", 0, 0, "", true, "", GIB, 0, 0, Set.of())),
                        List.of()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("index 0 used twice");
        assertThatThrownBy(() -> new GpuState("GPU-x", 0, -2, "", true, "", GIB, 0, 0, Set.of()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("NUMA node -2");
    }
}
