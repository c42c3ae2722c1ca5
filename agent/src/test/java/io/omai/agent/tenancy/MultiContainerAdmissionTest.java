package io.omai.agent.tenancy;

import static io.omai.agent.tenancy.DeviceReuseTest.ids;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.placement.AntiAffinityPolicy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** One Allocate of several containers is validated as a whole and recorded all or nothing. */
class MultiContainerAdmissionTest {
    @TempDir
    Path state;

    private TenancyNode node;

    @AfterEach
    void close() {
        if (node != null) {
            node.close();
        }
    }

    private TenancyNode node(int gpus, boolean kubernetesApi) throws Exception {
        node = new TenancyNode(state, gpus, AntiAffinityPolicy.GPU);
        node.pods.enabled = kubernetesApi;
        return node;
    }

    private long allocationDirectories() throws Exception {
        try (Stream<Path> entries = Files.list(state.resolve(AllocationLedger.ALLOCATIONS_DIR))) {
            return entries.count();
        }
    }

    @Test
    void overlappingContainersAreRefusedAsAWholeLeavingNothing() throws Exception {
        node(1, false);

        assertThatThrownBy(() -> node.gate.allocateAll(List.of(ids(0, 0, 250), ids(0, 200, 250))))
                .isInstanceOf(LedgerException.InvalidRequest.class)
                .hasMessageContaining("container_requests[1] and [0]")
                .hasMessageContaining(ids(0, 200, 1).getFirst());
        assertThat(node.ledger.allocations()).isEmpty();
        assertThat(allocationDirectories()).isZero();
    }

    @Test
    void tooManyContainersAreRefusedBeforeAnythingIsRecorded() throws Exception {
        node(2, false);
        List<List<String>> containers = new ArrayList<>();
        for (int i = 0; i < AdmissionGate.MAX_CONTAINERS_PER_REQUEST + 1; i++) {
            containers.add(ids(i % 2, (i / 2) * 10, 10));
        }

        assertThatThrownBy(() -> node.gate.allocateAll(containers))
                .isInstanceOf(LedgerException.InvalidRequest.class)
                .hasMessageContaining("has 65 containers; at most 64");
        assertThat(node.ledger.allocations()).isEmpty();
    }

    @Test
    void aLaterContainerThatDoesNotFitUndoesTheEarlierOnes() throws Exception {
        node(1, false);
        node.reserve(node.pendingPod("r", "ns-r", "team-r", 500, 1), 0, 500, 0, Duration.ofSeconds(60));

        // 300 + 300 fit kubelet's free IDs, but 500 of the GPU are reserved for another pod
        assertThatThrownBy(() -> node.gate.allocateAll(List.of(ids(0, 0, 300), ids(0, 300, 300))))
                .isInstanceOf(AdmissionRefusal.ReservedForOthers.class)
                .hasMessageContaining("300 milli requested, 200 free")
                .hasMessageContaining(TenancyNode.gpu(0));
        assertThat(node.ledger.allocations()).isEmpty();
        assertThat(allocationDirectories()).isZero();
        assertThat(node.book.outstanding()).hasSize(1);
    }

    @Test
    void containersThatFitTogetherAreAllRecorded() throws Exception {
        node(2, false);

        List<Allocation> made = node.gate.allocateAll(List.of(ids(0, 0, 300), ids(1, 0, 1000)));

        assertThat(made).extracting(Allocation::milli).containsExactly(300, 1000);
        assertThat(node.ledger.allocations()).hasSize(2);
    }

    @Test
    void anAppContainerReusesItsInitContainersDevices() throws Exception {
        node(1, true);
        PodInfo pod = new PodInfo(
                "p",
                "ns-a",
                "trainer",
                "team-a",
                true,
                node.clock.instant().minusSeconds(5),
                List.of(new PodInfo.GpuContainer("init", 250), new PodInfo.GpuContainer("main", 500)));
        node.pods.put(pod);
        Allocation init = node.gate.allocate(ids(0, 0, 250));
        assertThat(init.claim().container()).isEqualTo("init");

        // kubelet hands the init container's devices to the app container first, and adds free ones
        List<String> main = new ArrayList<>(ids(0, 0, 250));
        main.addAll(ids(0, 250, 250));
        Allocation app = node.gate.allocate(main);

        assertThat(app.claim().container()).isEqualTo("main");
        assertThat(app.claim().podUid()).isEqualTo("p");
        assertThat(node.ledger.allocations()).extracting(Allocation::id).containsExactly(app.id());
        // the init container starts after the whole pod is admitted: its files stay for the grace period
        Path initFiles = state.resolve(AllocationLedger.ALLOCATIONS_DIR).resolve(init.id());
        assertThat(initFiles.resolve("control")).exists();
        assertThat(node.ledger.allocation(init.id())).isEmpty();
    }

    @Test
    void anAppContainerGivenExactlyItsInitContainersDevicesSharesThatAllocation() throws Exception {
        node(1, true);
        PodInfo pod = new PodInfo(
                "p",
                "ns-a",
                "trainer",
                "team-a",
                true,
                node.clock.instant().minusSeconds(5),
                List.of(new PodInfo.GpuContainer("init", 250), new PodInfo.GpuContainer("main", 250)));
        node.pods.put(pod);
        Allocation init = node.gate.allocate(ids(0, 0, 250));

        Allocation app = node.gate.allocate(ids(0, 0, 250));

        assertThat(app.id()).isEqualTo(init.id());
        assertThat(node.ledger.allocations()).hasSize(1);
        assertThat(state.resolve(AllocationLedger.ALLOCATIONS_DIR)
                        .resolve(init.id())
                        .resolve("control"))
                .exists();
    }

    @Test
    void initContainersThatShareDevicesDoNotHideTheAppContainer() throws Exception {
        node(1, true);
        node.pods.put(new PodInfo(
                "p",
                "ns-a",
                "trainer",
                "team-a",
                true,
                node.clock.instant().minusSeconds(5),
                List.of(
                        new PodInfo.GpuContainer("init-1", 250),
                        new PodInfo.GpuContainer("init-2", 250),
                        new PodInfo.GpuContainer("main", 500))));
        Allocation init1 = node.gate.allocate(ids(0, 0, 250));
        Allocation init2 = node.gate.allocate(ids(0, 0, 250)); // kubelet reuses init-1's devices for init-2
        List<String> main = new ArrayList<>(ids(0, 0, 250));
        main.addAll(ids(0, 250, 250));

        Allocation app = node.gate.allocate(main);

        assertThat(init2.id()).isEqualTo(init1.id());
        assertThat(app.claim().container()).isEqualTo("main");
        assertThat(app.claim().tenant()).isEqualTo("team-a");
    }
}
