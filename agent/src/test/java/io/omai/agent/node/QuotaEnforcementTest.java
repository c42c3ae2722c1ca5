package io.omai.agent.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationClaim;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.quota.compute.ComputeTarget;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlWriterLock;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Who may unmap an allocation's files, and who may write its control file, with a real ledger. */
class QuotaEnforcementTest {
    private static final long GIB = 1L << 30;

    @TempDir
    Path state;

    private AllocationLedger ledger;
    private QuotaEnforcement enforcement;
    private Allocation share;

    @BeforeEach
    void open() throws Exception {
        var gpus = FakeNvml.gpus(1, 16 * GIB, 1);
        ledger = AllocationLedger.open(gpus, ConfigLoader.defaults().sharing(), state, Clock.systemUTC());
        share = ledger.allocate(
                IntStream.range(0, 250)
                        .mapToObj(s -> new MilliGpuId(FakeNvml.uuid(0), s).id())
                        .toList(),
                new AllocationClaim("uid-1", "ns-a", "infer", "main", "team-a", 4 * GIB));
        enforcement = new QuotaEnforcement(ledger, new FakeNvml(gpus), 100_000_000L);
    }

    @AfterEach
    void close() {
        enforcement.close();
        ledger.close();
    }

    /** Issue #13: the reaper's pass unmapped a released allocation while the compute loop still wrote through it. */
    @Test
    void aReleasedAllocationStaysMappedUntilTheComputePassHoldingItHasEnded() throws Exception {
        List<ComputeTarget> held = enforcement.targetsByGpu().get(FakeNvml.uuid(0)); // compute pass in progress
        assertThat(held).hasSize(1);
        ledger.reconcile(List.of(), java.time.Duration.ZERO);

        assertThat(enforcement.liveFiles())
                .as("the reaper's next pass no longer sees it")
                .isEmpty();
        // the compute pass goes on writing through the target it holds
        held.get(0).files().control().heartbeat();
        held.get(0).files().control().addTokenGrant(0, 1_000);
        assertThat(enforcement.mappedCount()).isEqualTo(1);

        assertThat(enforcement.targetsByGpu())
                .as("the compute loop's next pass")
                .isEmpty();
        assertThat(enforcement.mappedCount())
                .as("both users have moved on: unmapped")
                .isZero();
        assertThatThrownBy(() -> held.get(0).files().control().heartbeat())
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("closed");
    }

    /** While the agent maps an allocation it is the control file's one writer: a second writer is refused. */
    @Test
    void theAgentHoldsTheWriterLockOfEveryAllocationItMaps() throws Exception {
        enforcement.liveFiles();
        Path directory = ledger.directory(share);
        assertThatThrownBy(() -> AllocationFiles.openAsWriter(directory))
                .isInstanceOf(ControlWriterLock.HeldException.class)
                .hasMessageContaining("has a writer already")
                .hasMessageContaining(directory.toString());

        ledger.reconcile(List.of(), java.time.Duration.ZERO);
        enforcement.liveFiles();
        enforcement.targetsByGpu();
        assertThat(enforcement.mappedCount()).isZero();
    }
}
