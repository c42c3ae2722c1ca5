package io.omai.agent.tenancy;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuProcesses.GpuProcess;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationClaim;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.quota.audit.AuditFinding;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ShimLikeWriter;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The audit against a real ledger and usage files, with NVML's process list and the kill switch faked. */
class GpuProcessAuditTest {
    private static final long GIB = 1L << 30;

    @TempDir
    Path state;

    private AllocationLedger ledger;
    private final Map<String, List<GpuProcess>> nvml = new ConcurrentHashMap<>();
    private final List<Integer> killed = new ArrayList<>();
    private Allocation share;

    @BeforeEach
    void open() throws Exception {
        ledger = AllocationLedger.open(FakeNvml.gpus(2, 16 * GIB, 2), ConfigLoader.defaults().sharing(), state,
                Clock.systemUTC());
        share = ledger.allocate(IntStream.range(0, 250).mapToObj(s -> new MilliGpuId(FakeNvml.uuid(0), s).id())
                .toList(), new AllocationClaim("uid-1", "ns-a", "infer", "main", "team-a", 2 * GIB));
        // the shim's slot: this (host) pid holds a slot in the allocation's usage file
        try (ShimLikeWriter shim = new ShimLikeWriter(ledger.directory(share).resolve(AllocationFiles.USAGE))) {
            shim.claim(4242, 1);
        }
    }

    @AfterEach
    void close() {
        ledger.close();
    }

    private GpuProcessAudit audit(boolean kill) {
        return new GpuProcessAudit(ledger, gpu -> nvml.getOrDefault(gpu.uuid(), List.of()), kill, pid -> {
            killed.add(pid);
            return true;
        });
    }

    @Test
    void aProcessWithoutAShimSlotOnASharedGpuIsReportedOnTheSecondPassAndOnlyOnce() {
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, GIB), new GpuProcess(777, 3 * GIB)));
        nvml.put(FakeNvml.uuid(1), List.of(new GpuProcess(888, GIB))); // GPU 1 holds no allocation: not shared
        GpuProcessAudit audit = audit(false);

        assertThat(audit.auditOnce()).as("a first sighting may be a process about to attach").isEmpty();
        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.NO_SHIM);
            assertThat(finding.hostPid()).isEqualTo(777);
            assertThat(finding.gpuUuid()).isEqualTo(FakeNvml.uuid(0));
            assertThat(finding.namespace()).isEmpty();
            assertThat(finding.killed()).isFalse();
            assertThat(finding.describe()).contains("777").contains("without the OMAI shim");
        });
        assertThat(audit.auditOnce()).as("reported once while it lasts").isEmpty();
        assertThat(killed).isEmpty();
    }

    @Test
    void aShimmedProcessBeyondItsQuotaIsAttributedToItsPodAndKilledByPolicy() {
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, 2 * GIB + GpuProcessAudit.CONTEXT_SLACK_BYTES + 1)));
        GpuProcessAudit audit = audit(true);

        audit.auditOnce();
        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.MEMORY_OVER_QUOTA);
            assertThat(finding.namespace()).isEqualTo("ns-a");
            assertThat(finding.pod()).isEqualTo("infer");
            assertThat(finding.podUid()).isEqualTo("uid-1");
            assertThat(finding.limitBytes()).isEqualTo(2 * GIB);
            assertThat(finding.allocationId()).isEqualTo(share.id());
            assertThat(finding.killed()).isTrue();
        });
        assertThat(killed).containsExactly(4242);
    }

    @Test
    void contextMemoryWithinTheSlackIsNotAFinding() {
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, 2 * GIB + GpuProcessAudit.CONTEXT_SLACK_BYTES)));
        GpuProcessAudit audit = audit(true);
        audit.auditOnce();
        assertThat(audit.auditOnce()).isEmpty();
        assertThat(killed).isEmpty();
    }
}
