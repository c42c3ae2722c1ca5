package io.omai.agent.schedapi;

import static io.omai.agent.schedapi.NodeFixtures.GIB;
import static io.omai.agent.schedapi.NodeFixtures.uuid;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.ContainerRequirement;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.Health;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.ContainerDemand;
import io.omai.placement.GpuCondition;
import io.omai.placement.GpuState;
import io.omai.placement.HcaState;
import io.omai.placement.NodeState;
import io.omai.placement.Plan;
import io.omai.placement.Planner;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * What a scheduler extender (a separate JVM) relies on: building the placement model's {@link NodeState} from the
 * published node state alone (GetNodeState / WatchNodeState) and running the same {@link Planner} gives the
 * agent's own Fit verdict, placements and score.
 */
class SameVerdictFromWatchedStateTest {
    private final InProcessSchedulerApi api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);

    @AfterEach
    void close() {
        api.close();
    }

    /** The extender's side: the published proto to the model's input, nothing else. */
    private static NodeState fromPublished(io.omai.agent.schedapi.v1.NodeState published) {
        List<GpuState> gpus = published.getGpusList().stream()
                .map(g -> new GpuState(
                        g.getUuid(),
                        g.getIndex(),
                        g.getNumaNode(),
                        "",
                        g.getHealth() == Health.HEALTH_HEALTHY,
                        g.getHealthReason(),
                        g.getMemoryBytes(),
                        g.getMilliAllocated() + g.getMilliReserved(),
                        g.getMemoryAllocatedBytes() + g.getMemoryReservedBytes(),
                        Set.copyOf(g.getTenantsList())))
                .toList();
        List<HcaState> hcas = published.getHcasList().stream()
                .map(h -> new HcaState(
                        h.getName(), h.getNumaNode(), h.getFreeVfIdsList(), Set.copyOf(h.getFreeVfIdsList())))
                .toList();
        return new NodeState(published.getNodeName(), gpus, hcas);
    }

    private static ContainerRequirement need(String name, int milli, int vfs) {
        return ContainerRequirement.newBuilder()
                .setName(name)
                .setMilli(milli)
                .setVfs(vfs)
                .build();
    }

    @Test
    void theExtendersPlanFromThePublishedStateEqualsTheAgentsFit() {
        api.inventory.allocate(uuid(1), "team-a", 400, 10 * GIB);
        api.inventory.allocate(uuid(5), "team-a", 400, 10 * GIB);
        api.inventory.allocate(uuid(6), "team-b", 100, 10 * GIB);
        api.inventory.setHealth(uuid(7), DeviceHealth.unhealthy("XID 79"));
        api.blocking.reserve(ReserveRequest.newBuilder()
                .setIdempotencyKey("k1")
                .setPodUid("pod-1")
                .setTenant("team-b")
                .setLeaseSeconds(30)
                .addContainers(ContainerAssignment.newBuilder()
                        .setName("main")
                        .addGpuUuids(uuid(0))
                        .setMilli(250))
                .build());
        NodeState watched = fromPublished(api.blocking.getNodeState(GetNodeStateRequest.getDefaultInstance()));

        List<List<ContainerRequirement>> pods = List.of(
                List.of(need("main", 500, 0)),
                List.of(need("main", 300, 1), need("side", 600, 0)),
                List.of(need("train", 2000, 2)),
                List.of(need("train", 4000, 0)),
                List.of(need("big", 900, 0), need("big2", 900, 0), need("big3", 900, 0), need("big4", 900, 0)));
        for (String tenant : List.of("team-a", "team-b", "team-c")) {
            for (List<ContainerRequirement> pod : pods) {
                FitResponse fit = api.blocking.fit(FitRequest.newBuilder()
                        .setTenant(tenant)
                        .addAllContainers(pod)
                        .build());
                Plan plan = Planner.plan(
                        watched,
                        tenant,
                        pod.stream()
                                .map(c -> new ContainerDemand(c.getName(), c.getMilli(), 0, c.getVfs()))
                                .toList(),
                        AntiAffinityPolicy.GPU,
                        GpuCondition.ANY);

                String what = tenant + " "
                        + pod.stream()
                                .map(c -> c.getName() + "=" + c.getMilli())
                                .toList();
                assertThat(plan.feasible()).as("feasible: %s", what).isEqualTo(fit.getFeasible());
                assertThat(plan.score()).as("score: %s", what).isEqualTo(fit.getScore());
                assertThat(plan.placements().stream()
                                .map(p -> p.container() + p.gpuUuids() + p.milli() + "/" + p.memoryBytes() + p.vfIds())
                                .toList())
                        .as("placements: %s", what)
                        .isEqualTo(fit.getAssignmentsList().stream()
                                .map(a -> a.getName() + a.getGpuUuidsList() + a.getMilli() + "/" + a.getMemoryBytes()
                                        + a.getVfIdsList())
                                .toList());
                assertThat(plan.refusals().stream()
                                .map(r -> r.container() + "@" + r.gpuUuid() + ": " + r.message())
                                .toList())
                        .as("reasons: %s", what)
                        .isEqualTo(fit.getReasonsList().stream()
                                .map(r -> r.getContainer() + "@" + r.getGpuUuid() + ": " + r.getMessage())
                                .toList());
            }
        }
    }
}
