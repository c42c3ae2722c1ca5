package io.omai.ibvf.guid;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.error.GuidAssignmentException;
import io.omai.ibvf.guid.GuidAllocator.ObservedGuid;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.PciAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GuidAllocatorTest {

    private static final PciAddress PF = PciAddress.of("0000:3b:00.0");

    @TempDir
    Path state;

    private static PciAddress vf(int index) {
        return PciAddress.of("0000:3b:00." + (index + 1));
    }

    private static Guid guid(String text) {
        return Guid.parse(text).orElseThrow();
    }

    @Test
    void sameNodePfAndIndex_giveTheSameGuidEvenWithoutTheStore() {
        GuidRange range = GuidRange.parse("02:00:00:07:00:00:00:00-02:00:00:07:00:ff:ff:ff");
        Guid first = new GuidAllocator("worker-07", range, new FileGuidStore(state.resolve("a")))
                .assign(PF, 3, vf(3), List.of());
        Guid again = new GuidAllocator("worker-07", range, new FileGuidStore(state.resolve("b")))
                .assign(PF, 3, vf(3), List.of());
        Guid otherNode = new GuidAllocator("worker-08", range, new FileGuidStore(state.resolve("c")))
                .assign(PF, 3, vf(3), List.of());

        assertThat(again).isEqualTo(first);
        assertThat(otherNode).isNotEqualTo(first);
        assertThat(range.contains(first)).isTrue();
    }

    @Test
    void neverZeroOrAllOnes_neverSomethingTheNodeShows_neverTwice() {
        // 00..02 holds the all-zero GUID, and 01 is already shown by the PF: only 02 is usable
        GuidAllocator low = new GuidAllocator(
                "n", new GuidRange(new Guid(0L), new Guid(2L)), new FileGuidStore(state.resolve("low")));
        List<ObservedGuid> observed = List.of(new ObservedGuid(new Guid(1L), PF));

        assertThat(low.assign(PF, 0, vf(0), observed)).isEqualTo(new Guid(2L));
        assertThatThrownBy(() -> low.assign(PF, 1, vf(1), observed))
                .isInstanceOf(GuidAssignmentException.class)
                .hasMessageContaining("no free GUID")
                .hasMessageContaining("VF 1 of 0000:3b:00.0");

        // ..fe..ff holds all-ones: only ..fe is usable
        GuidAllocator high = new GuidAllocator(
                "n", new GuidRange(new Guid(-2L), Guid.ALL_ONES), new FileGuidStore(state.resolve("high")));
        assertThat(high.assign(PF, 0, vf(0), List.of())).isEqualTo(new Guid(-2L));
        assertThatThrownBy(() -> high.assign(PF, 1, vf(1), List.of())).isInstanceOf(GuidAssignmentException.class);
    }

    @Test
    void manyVfs_getDistinctGuids() {
        GuidAllocator allocator = new GuidAllocator(
                "n",
                GuidRange.parse("02:00:00:00:00:00:00:00-02:00:00:00:00:00:00:3f"),
                new FileGuidStore(state.resolve("g")));
        Set<Guid> seen = new HashSet<>();
        for (int index = 0; index < 64; index++) {
            assertThat(seen.add(allocator.assign(PF, index, vf(index % 7), List.of())))
                    .isTrue();
        }
    }

    @Test
    void persistedGuid_isReturnedUnchanged_butNotIfAnotherDeviceNowShowsIt() {
        GuidRange range = GuidRange.parse("02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff");
        Guid given =
                new GuidAllocator("n", range, new FileGuidStore(state.resolve("g"))).assign(PF, 0, vf(0), List.of());
        GuidAllocator restarted = new GuidAllocator("n", range, new FileGuidStore(state.resolve("g")));

        assertThat(restarted.assigned(PF, 0)).contains(given);
        assertThat(restarted.assign(PF, 0, vf(0), List.of(new ObservedGuid(given, vf(0)))))
                .isEqualTo(given);
        assertThatThrownBy(() -> restarted.assign(PF, 0, vf(0), List.of(new ObservedGuid(given, vf(5)))))
                .isInstanceOf(GuidAssignmentException.class)
                .hasMessageContaining(given.toString())
                .hasMessageContaining("0000:3b:00.6");
    }

    @Test
    void store_fromAnotherNode_isRefused() {
        FileGuidStore store = new FileGuidStore(state.resolve("g"));
        store.save("worker-01", java.util.Map.of(new GuidKey(PF, 0), guid("02:00:00:01:00:00:00:01")));

        assertThatThrownBy(() -> store.load("worker-07"))
                .isInstanceOf(GuidAssignmentException.class)
                .hasMessageContaining("'worker-01'")
                .hasMessageContaining("'worker-07'");
    }

    @Test
    void store_withAGarbageLine_namesFileLineAndContent() throws Exception {
        Path file = state.resolve("g");
        Files.writeString(file, "format 1\nnode n\n0000:3b:00.0 0 00:00:00:00:00:00:00:00\n");

        assertThatThrownBy(() -> new FileGuidStore(file).load("n"))
                .isInstanceOf(GuidAssignmentException.class)
                .hasMessageContaining(file.toString())
                .hasMessageContaining("line 3")
                .hasMessageContaining("'0000:3b:00.0 0 00:00:00:00:00:00:00:00'");
    }

    @Test
    void guidSpellings_roundTrip() {
        Guid guid = guid("b83f:d203:00a1:b2c4");

        assertThat(guid.toIpLinkFormat()).isEqualTo("b8:3f:d2:03:00:a1:b2:c4");
        assertThat(Guid.parse(guid.toIpLinkFormat())).contains(guid);
        assertThat(guid.toSysfsFormat()).isEqualTo("b83f:d203:00a1:b2c4");
        assertThat(Guid.parse("b83f:d203:00a1")).isEmpty();
        assertThat(Guid.parse("zz:3f:d2:03:00:a1:b2:c4")).isEmpty();
        assertThat(Guid.ZERO.isAssignable()).isFalse();
        assertThat(Guid.ALL_ONES.isAssignable()).isFalse();
    }
}
