package io.omai.agent.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.HeldDevices;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.lifecycle.AgentStartException;
import io.omai.agent.lifecycle.SupervisedLoop;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.NodeCapacity;
import io.omai.agent.tenancy.NodePods;
import io.omai.agent.tenancy.PodInfo;
import io.omai.agent.tenancy.ReservationBook;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Collection;
import java.util.List;
import java.util.function.Supplier;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TenancyServicesTest {
    @TempDir
    Path state;

    private final List<GpuDevice> gpus = FakeNvml.gpus(3, 16L << 30, 2);

    @Test
    void thePartitionKeepsTheConfiguredGpusByUuidOrIndexAndRefusesUnknownOnes() throws Exception {
        assertThat(TenancyServices.partition(gpus, List.of())).isEqualTo(gpus);
        assertThat(TenancyServices.partition(gpus, List.of(FakeNvml.uuid(2), "0")))
                .extracting(GpuDevice::index)
                .containsExactly(0, 2);
        assertThatThrownBy(() -> TenancyServices.partition(gpus, List.of("7")))
                .isInstanceOf(AgentStartException.class)
                .hasMessageContaining("tenancy.gpus names 7")
                .hasMessageContaining(FakeNvml.uuid(1));
    }

    @Test
    void anAdoptedAllocationLearnsItsPodAndTenantFromTheInformer() throws Exception {
        try (AllocationLedger ledger =
                AllocationLedger.open(gpus, ConfigLoader.defaults().sharing(), state, Clock.systemUTC())) {
            List<String> ids = IntStream.range(0, 100)
                    .mapToObj(s -> new MilliGpuId(FakeNvml.uuid(0), s).id())
                    .toList();
            ledger.reconcile(List.of(new HeldDevices("ns-a/trainer/main", ids)), Duration.ZERO); // adopted
            String id = ledger.allocations().getFirst().id();
            PodInfo pod = new PodInfo("uid-7", "ns-a", "trainer", "team-x", false, Instant.EPOCH, List.of());
            NodePods pods = new NodePods() {
                @Override
                public boolean enabled() {
                    return true;
                }

                @Override
                public Collection<PodInfo> pods() {
                    return List.of(pod);
                }
            };

            TenancyServices.learnClaims(ledger, pods);

            var claim = ledger.allocation(id).orElseThrow().claim();
            assertThat(claim.podUid()).isEqualTo("uid-7");
            assertThat(claim.tenant()).isEqualTo("team-x");
            assertThat(claim.container()).isEqualTo("main");
        }
    }

    @Test
    void thePeriodicChecksAreSupervisedLoopsThatHealthzJudgesAndCloseStops() throws Exception {
        try (AllocationLedger ledger =
                AllocationLedger.open(gpus, ConfigLoader.defaults().sharing(), state, Clock.systemUTC())) {
            AgentConfig config = ConfigLoader.defaults();
            TenancyServices services = TenancyServices.start(
                    config,
                    gpus,
                    ledger,
                    new ReservationBook(
                            (Supplier<NodeCapacity>) () -> {
                                throw new AssertionError("no reservation in this test");
                            },
                            TenancyServices.policy(config),
                            Clock.systemUTC()),
                    new GpuWithdrawals(),
                    new FakeNvml(gpus),
                    null);
            List<SupervisedLoop> loops = services.loops();
            // no Kubernetes API here: no pod-claims loop; the audit is on by default
            assertThat(loops).extracting(SupervisedLoop::name).containsExactly("coexistence-check", "nvml-audit");
            assertThat(loops)
                    .allSatisfy(
                            loop -> assertThat(loop.problem(System.nanoTime())).isEmpty());

            services.close();

            // closed on purpose: no problem for /healthz, and no pass after the close
            long[] passes = loops.stream().mapToLong(SupervisedLoop::passes).toArray();
            Thread.sleep(50);
            assertThat(loops.stream().mapToLong(SupervisedLoop::passes).toArray())
                    .containsExactly(passes);
            assertThat(loops)
                    .allSatisfy(
                            loop -> assertThat(loop.problem(System.nanoTime())).isEmpty());
        }
    }
}
