package io.omai.agent.ledger;

import static io.omai.agent.ledger.LedgerFixtures.allIds;
import static io.omai.agent.ledger.LedgerFixtures.gpus;
import static io.omai.agent.ledger.LedgerFixtures.ids;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuDevice;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PreferredAllocationPolicyTest {
    private static final List<GpuDevice> FOUR = gpus(4); // NUMA 0: GPUs 0,1; NUMA 1: GPUs 2,3

    private static List<MilliGpuId> parse(List<String> ids) {
        return ids.stream().map(MilliGpuId::parse).toList();
    }

    private static List<MilliGpuId> choose(List<String> available, List<String> mustInclude, int size)
            throws LedgerException {
        return PreferredAllocationPolicy.choose(FOUR, parse(available), parse(mustInclude), size);
    }

    @SafeVarargs
    private static List<String> concat(List<String>... lists) {
        List<String> all = new ArrayList<>();
        for (List<String> list : lists) {
            all.addAll(list);
        }
        return all;
    }

    @Test
    void aShareGoesToTheFullestGpuThatStillFits() throws LedgerException {
        // GPU 0 has 300 free, GPU 1 has 200 free (fullest but too small for 250), GPUs 2 and 3 are empty.
        List<String> available = concat(ids(0, 700, 300), ids(1, 800, 200), allIds(2, 3));
        List<MilliGpuId> chosen = choose(available, List.of(), 250);
        assertThat(chosen).hasSize(250).allMatch(id -> id.uuid().equals(FakeNvml.uuid(0)));
        assertThat(chosen.getFirst().slot()).isEqualTo(700);
    }

    @Test
    void aShareIsNeverSplitEvenWhenTheFreeTotalWouldSuffice() {
        List<String> available = concat(ids(0, 0, 300), ids(1, 0, 300));
        assertThatThrownBy(() -> choose(available, List.of(), 500))
                .isInstanceOf(LedgerException.NoFit.class)
                .hasMessageContaining("no single GPU has 500 free milli")
                .hasMessageContaining("never split");
    }

    @Test
    void amongEquallyFullGpusTheOneOnTheFullerNumaNodeWins() throws LedgerException {
        // GPUs 1 and 2 both have 400 free; NUMA 0 (GPUs 0,1) has less free in total than NUMA 1 (GPUs 2,3).
        List<String> available = concat(ids(0, 0, 100), ids(1, 0, 400), ids(2, 0, 400), allIds(3));
        assertThat(choose(available, List.of(), 300)).allMatch(id -> id.uuid().equals(FakeNvml.uuid(1)));
    }

    @Test
    void mustIncludeIdsPinTheGpuAndAreKept() throws LedgerException {
        List<String> available = allIds(0, 1, 2, 3);
        List<MilliGpuId> chosen = choose(available, List.of(LedgerFixtures.id(2, 500)), 100);
        assertThat(chosen).hasSize(100).allMatch(id -> id.uuid().equals(FakeNvml.uuid(2)));
        assertThat(chosen).contains(MilliGpuId.parse(LedgerFixtures.id(2, 500)));
    }

    @Test
    void aMustIncludeIdThatIsNotAvailableIsRefusedNeverReturned() {
        // kubelet's contract: must-include IDs are among the available ones; m5 may be a running container's
        List<String> available = LedgerFixtures.ids(0, 100, 900);

        assertThatThrownBy(() -> choose(available, List.of(LedgerFixtures.id(0, 5)), 100))
                .isInstanceOf(LedgerException.InvalidRequest.class)
                .hasMessageContaining(LedgerFixtures.id(0, 5))
                .hasMessageContaining("not in available_deviceIDs");
    }

    @Test
    void mustIncludeIdsOnTwoGpusCannotMakeOneShare() {
        assertThatThrownBy(() -> choose(allIds(0, 1), List.of(LedgerFixtures.id(0, 1), LedgerFixtures.id(1, 1)), 100))
                .isInstanceOf(LedgerException.InvalidRequest.class)
                .hasMessageContaining("must stay on one GPU");
    }

    @Test
    void multiplesOfAThousandTakeWholeFreeGpusOnOneNumaNode() throws LedgerException {
        // GPU 0 is partly used, so NUMA 0 has one free GPU; NUMA 1 has two: 2000 must go to GPUs 2 and 3.
        List<String> available = concat(ids(0, 0, 999), allIds(1, 2, 3));
        List<MilliGpuId> chosen = choose(available, List.of(), 2000);
        assertThat(chosen).hasSize(2000);
        assertThat(chosen.stream().map(MilliGpuId::uuid).distinct())
                .containsExactly(FakeNvml.uuid(2), FakeNvml.uuid(3));
    }

    @Test
    void aSingleWholeGpuPrefersTheNodeWithFewestFreeGpus() throws LedgerException {
        List<String> available = concat(ids(0, 0, 10), allIds(1, 2, 3));
        List<MilliGpuId> chosen = choose(available, List.of(), 1000);
        assertThat(chosen.stream().map(MilliGpuId::uuid).distinct()).containsExactly(FakeNvml.uuid(1));
    }

    @Test
    void wholeGpusSpanNumaNodesOnlyWhenNoNodeSuffices() throws LedgerException {
        List<MilliGpuId> chosen = choose(allIds(0, 1, 2, 3), List.of(), 3000);
        assertThat(chosen.stream().map(MilliGpuId::uuid).distinct()).hasSize(3);
    }

    @Test
    void notEnoughWholeGpusIsNoFit() {
        assertThatThrownBy(() -> choose(concat(ids(0, 0, 999), allIds(1)), List.of(), 2000))
                .isInstanceOf(LedgerException.NoFit.class)
                .hasMessageContaining("2 entirely free GPUs requested, but only 1");
    }

    @Test
    void sizesThatWouldSplitAShareAreRefused() {
        assertThatThrownBy(() -> choose(allIds(0, 1), List.of(), 1500))
                .isInstanceOf(LedgerException.InvalidRequest.class)
                .hasMessageContaining("allocation_size 1500 cannot be placed without splitting");
        assertThatThrownBy(() -> choose(allIds(0, 1), List.of(), 0))
                .isInstanceOf(LedgerException.InvalidRequest.class)
                .hasMessageContaining("not positive");
    }
}
