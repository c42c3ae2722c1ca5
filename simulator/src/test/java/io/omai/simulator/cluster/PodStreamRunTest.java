package io.omai.simulator.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ContainerBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.omai.agent.schedapi.v1.Allocation;
import io.omai.agent.schedapi.v1.GpuState;
import io.omai.agent.schedapi.v1.Health;
import io.omai.agent.schedapi.v1.NodeState;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The judgements a cluster run makes from the agents' states, on states made by hand. */
class PodStreamRunTest {
    private static GpuState gpu(String uuid, int allocated, int reserved, String gpuClass, String... tenants) {
        return GpuState.newBuilder()
                .setUuid(uuid)
                .setMilliCapacity(1000)
                .setMilliAllocated(allocated)
                .setMilliReserved(reserved)
                .setHealth(Health.HEALTH_HEALTHY)
                .putAttributes("class", gpuClass)
                .addAllTenants(List.of(tenants))
                .build();
    }

    private static ClusterPod pod(int milli, int vfs, Optional<String> gpuClass) {
        return new ClusterPod("team-a", "p", milli, vfs, gpuClass, Optional.empty(), milli);
    }

    @Test
    void twoTenantsOnOneGpuAreACoLocationWhetherTheGpuOrItsAllocationsSaySo() {
        NodeState byGpu = NodeState.newBuilder()
                .setNodeName("node-1")
                .addGpus(gpu("GPU-0", 500, 0, "train", "team-a", "team-b"))
                .build();
        NodeState byAllocations = NodeState.newBuilder()
                .setNodeName("node-2")
                .addGpus(gpu("GPU-1", 500, 0, "train", "team-a"))
                .addAllocations(Allocation.newBuilder()
                        .setGpuUuid("GPU-1")
                        .setTenant("team-a")
                        .setMilli(250))
                .addAllocations(Allocation.newBuilder()
                        .setGpuUuid("GPU-1")
                        .setTenant("team-b")
                        .setMilli(250))
                .addAllocations(Allocation.newBuilder().setGpuUuid("").setTenant("team-c"))
                .build();
        NodeState clean = NodeState.newBuilder()
                .setNodeName("node-3")
                .addGpus(gpu("GPU-2", 500, 0, "train", "team-a"))
                .addAllocations(Allocation.newBuilder()
                        .setGpuUuid("GPU-2")
                        .setTenant("team-a")
                        .setMilli(250))
                .addAllocations(Allocation.newBuilder()
                        .setGpuUuid("GPU-2")
                        .setTenant("team-a")
                        .setMilli(250))
                .build();

        assertThat(PodStreamRun.coLocations(List.of(byGpu, byAllocations, clean)))
                .containsExactly("node-1/GPU-0 [team-a, team-b]", "node-2/GPU-1 allocations of [team-a, team-b]");
    }

    @Test
    void reservationsCountTowardsOverCommit() {
        NodeState state = NodeState.newBuilder()
                .setNodeName("node-1")
                .addGpus(gpu("GPU-0", 750, 500, "train", "team-a"))
                .addGpus(gpu("GPU-1", 500, 500, "train", "team-a"))
                .build();
        assertThat(PodStreamRun.overCommits(List.of(state))).containsExactly("node-1/GPU-0 1250/1000");
    }

    @Test
    void roomIgnoresTenantsButNotSizeClassWholenessOrVfs() {
        NodeState state = NodeState.newBuilder()
                .setNodeName("node-1")
                .addGpus(gpu("GPU-0", 750, 0, "train", "team-b"))
                .addGpus(gpu("GPU-1", 0, 500, "infer", "team-c"))
                .addGpus(gpu("GPU-2", 0, 0, "infer"))
                .build();
        List<NodeState> states = List.of(state);
        // another tenant's GPU with room is room
        assertThat(PodStreamRun.fitsIgnoringTenants(pod(250, 0, Optional.empty()), states, n -> 0))
                .isTrue();
        assertThat(PodStreamRun.fitsIgnoringTenants(pod(250, 0, Optional.of("train")), states, n -> 0))
                .isTrue();
        assertThat(PodStreamRun.fitsIgnoringTenants(pod(500, 0, Optional.of("train")), states, n -> 0))
                .isFalse();
        // one untouched GPU: one whole GPU fits, two do not (a reserved GPU is not untouched)
        assertThat(PodStreamRun.fitsIgnoringTenants(pod(1000, 0, Optional.empty()), states, n -> 0))
                .isTrue();
        assertThat(PodStreamRun.fitsIgnoringTenants(pod(2000, 0, Optional.empty()), states, n -> 0))
                .isFalse();
        assertThat(PodStreamRun.fitsIgnoringTenants(pod(250, 1, Optional.empty()), states, n -> 0))
                .isFalse();
        assertThat(PodStreamRun.fitsIgnoringTenants(pod(250, 1, Optional.empty()), states, n -> 1))
                .isTrue();
    }

    @Test
    void fillIsHeldMilliOverCapacity() {
        NodeState a = NodeState.newBuilder()
                .addGpus(gpu("GPU-0", 1000, 0, "train"))
                .addGpus(gpu("GPU-1", 250, 500, "train"))
                .build();
        assertThat(PodStreamRun.fillOf(List.of(a))).isEqualTo(0.625);
        assertThat(PodStreamRun.fillOf(List.of())).isZero();
    }

    @Test
    void kubeSchedulerCountsTheLargerOfTheBiggestInitContainerAndTheSumOfTheOthers() {
        Pod pod = new PodBuilder()
                .withNewSpec()
                .addToInitContainers(container("init", 1000, 0))
                .addToContainers(container("a", 250, 1))
                .addToContainers(container("b", 500, 1))
                .endSpec()
                .build();
        assertThat(KubeSchedulerDriver.requests(pod))
                .isEqualTo(Map.of(SimulatedCluster.MILLI_GPU, 1000L, SimulatedCluster.IB_VF, 2L));
    }

    private static io.fabric8.kubernetes.api.model.Container container(String name, int milli, int vfs) {
        ContainerBuilder container = new ContainerBuilder().withName(name);
        var resources = container.withNewResources().addToLimits(SimulatedCluster.MILLI_GPU, new Quantity("" + milli));
        if (vfs > 0) {
            resources = resources.addToLimits(SimulatedCluster.IB_VF, new Quantity("" + vfs));
        }
        return resources.endResources().build();
    }

    @Test
    void aStreamIsTheSameForTheSameSeedAndMixesEverySize() {
        List<ClusterPod> stream = ClusterPod.stream(15, 200);
        assertThat(stream).isEqualTo(ClusterPod.stream(15, 200));
        assertThat(stream).extracting(ClusterPod::milli).contains(250, 500, 1000, 2000);
        assertThat(stream).extracting(ClusterPod::tenant).containsOnly("team-a", "team-b", "team-c");
        assertThat(stream)
                .anyMatch(p -> p.vfs() == 1)
                .anyMatch(p -> p.selector().isPresent());
        assertThat(stream.getFirst().toPod().getMetadata().getNamespace())
                .isEqualTo(stream.getFirst().tenant());
    }
}
