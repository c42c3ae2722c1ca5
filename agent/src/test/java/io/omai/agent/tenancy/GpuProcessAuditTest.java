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
import io.omai.agent.quota.audit.ProcessIdentity;
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
        ledger = AllocationLedger.open(
                FakeNvml.gpus(2, 16 * GIB, 2), ConfigLoader.defaults().sharing(), state, Clock.systemUTC());
        share = ledger.allocate(
                IntStream.range(0, 250)
                        .mapToObj(s -> new MilliGpuId(FakeNvml.uuid(0), s).id())
                        .toList(),
                new AllocationClaim("uid-1", "ns-a", "infer", "main", "team-a", 2 * GIB));
        // the shim's slot: this (host) pid holds a slot in the allocation's usage file
        try (ShimLikeWriter shim = new ShimLikeWriter(ledger.directory(share).resolve(AllocationFiles.USAGE))) {
            shim.claim(4242, 1);
        }
    }

    @AfterEach
    void close() {
        ledger.close();
    }

    /** pid → its cgroup and mount namespace; pids not here are gone. The agent's own are "host". */
    private final Map<Integer, List<String>> identities = new ConcurrentHashMap<>();

    private final Map<String, Map<Integer, Long>> busy = new ConcurrentHashMap<>();
    private long now = 1_000_000_000L;

    private GpuProcessAudit audit(boolean kill) {
        int self = (int) ProcessHandle.current().pid();
        identities.put(self, List.of("cgroup:/agent", "mntns:host"));
        identities.put(1, List.of("cgroup:/", "mntns:host"));
        return new GpuProcessAudit(
                ledger,
                gpu -> nvml.getOrDefault(gpu.uuid(), List.of()),
                pid -> identities.getOrDefault(pid, List.of()),
                uuid -> busy.getOrDefault(uuid, Map.of()),
                () -> now,
                kill,
                pid -> {
                    killed.add(pid);
                    return true;
                });
    }

    @Test
    void aProcessWithoutAShimSlotOnASharedGpuIsReportedOnTheSecondPassAndOnlyOnce() {
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, GIB), new GpuProcess(777, 3 * GIB)));
        nvml.put(FakeNvml.uuid(1), List.of(new GpuProcess(888, GIB))); // GPU 1 holds no allocation: not shared
        GpuProcessAudit audit = audit(false);

        assertThat(audit.auditOnce())
                .as("a first sighting may be a process about to attach")
                .isEmpty();
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
    void aShimmedProcessBeyondItsQuotaIsAttributedToItsPodAndKilledByPolicyOnTheFirstPass() {
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, 2 * GIB + GpuProcessAudit.CONTEXT_SLACK_BYTES + 1)));
        GpuProcessAudit audit = audit(true);

        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason())
                    .as("its container is that one process")
                    .isEqualTo(AuditFinding.Reason.CONTAINER_MEMORY_OVER_QUOTA);
            assertThat(finding.namespace()).isEqualTo("ns-a");
            assertThat(finding.pod()).isEqualTo("infer");
            assertThat(finding.podUid()).isEqualTo("uid-1");
            assertThat(finding.limitBytes()).isEqualTo(2 * GIB);
            assertThat(finding.allocationId()).isEqualTo(share.id());
            assertThat(finding.killed()).isTrue();
        });
        assertThat(killed).containsExactly(4242);
    }

    /** One process beyond the quota plus its context, in a container whose total is still within its slack. */
    @Test
    void oneProcessBeyondTheQuotaInAContainerWithinItsSlackIsAProcessFinding() throws Exception {
        try (ShimLikeWriter shim = new ShimLikeWriter(ledger.directory(share).resolve(AllocationFiles.USAGE))) {
            shim.claim(4243, 1);
        }
        nvml.put(
                FakeNvml.uuid(0),
                List.of(
                        new GpuProcess(4242, 2 * GIB + GpuProcessAudit.CONTEXT_SLACK_BYTES + 1),
                        new GpuProcess(4243, 1L << 20)));
        assertThat(audit(false).auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.MEMORY_OVER_QUOTA);
            assertThat(finding.hostPid()).isEqualTo(4242);
        });
    }

    @Test
    void contextMemoryWithinTheSlackIsNotAFinding() {
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, 2 * GIB + GpuProcessAudit.CONTEXT_SLACK_BYTES)));
        GpuProcessAudit audit = audit(true);
        audit.auditOnce();
        assertThat(audit.auditOnce()).isEmpty();
        assertThat(killed).isEmpty();
    }

    private Allocation second() throws Exception {
        return ledger.allocate(
                IntStream.range(250, 500)
                        .mapToObj(s -> new MilliGpuId(FakeNvml.uuid(0), s).id())
                        .toList(),
                new AllocationClaim("uid-2", "ns-b", "train", "main", "team-b", 2 * GIB));
    }

    /**
     * Issue #13: with the usage file's total zeroed, two processes of one container each held their quota; NVML
     * saw twice the quota while the metric said one. The audit sums NVML by container and kills on the first pass.
     */
    @Test
    void aContainerWhoseProcessesTogetherHoldMoreThanItsQuotaIsKilledOnTheFirstPass() throws Exception {
        try (ShimLikeWriter shim = new ShimLikeWriter(ledger.directory(share).resolve(AllocationFiles.USAGE))) {
            shim.claim(4243, 1);
        }
        identities.put(4242, List.of("cgroup:/pod-a", "mntns:a"));
        identities.put(4243, List.of("cgroup:/pod-a", "mntns:a"));
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, 2 * GIB), new GpuProcess(4243, 2 * GIB)));
        GpuProcessAudit audit = audit(true);

        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.CONTAINER_MEMORY_OVER_QUOTA);
            assertThat(finding.usedBytes()).isEqualTo(4 * GIB);
            assertThat(finding.limitBytes()).isEqualTo(2 * GIB);
            assertThat(finding.namespace()).isEqualTo("ns-a");
            assertThat(finding.allocationId()).isEqualTo(share.id());
            assertThat(finding.killed()).isTrue();
            assertThat(finding.describe())
                    .contains("together hold 4294967296 bytes", "pid 4242", "pid 4243", "the usage file says 0 B");
        });
        assertThat(killed).containsExactlyInAnyOrder(4242, 4243);
        assertThat(audit.auditOnce()).as("once while it lasts").isEmpty();
    }

    /** A process that wiped its slot (or never loaded the shim) is still in its container's cgroup: it counts. */
    @Test
    void aProcessWithoutASlotInAContainersCgroupIsTheContainersAndCountsAgainstItsQuota() {
        identities.put(4242, List.of("cgroup:/pod-a", "mntns:a"));
        identities.put(5000, List.of("cgroup:/pod-a", "mntns:a"));
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, GIB), new GpuProcess(5000, 3 * GIB)));
        GpuProcessAudit audit = audit(false);

        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.CONTAINER_MEMORY_OVER_QUOTA);
            assertThat(finding.usedBytes()).isEqualTo(4 * GIB);
            assertThat(finding.killed()).isFalse();
        });
        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.NO_SHIM);
            assertThat(finding.hostPid()).isEqualTo(5000);
            assertThat(finding.pod()).isEqualTo("infer");
            assertThat(finding.describe())
                    .contains("process 5000", "pod ns-a/infer", "without the OMAI shim", "cgroup or mount namespace");
        });
        assertThat(killed).isEmpty();
    }

    /**
     * A container whose only process runs without the shim has no slot to learn its cgroup from; the usage file
     * its root shows at /run/omai/usage (the container's bind mount) names the allocation anyway.
     */
    @Test
    void aProcessWhoseRootShowsAnAllocationsUsageFileIsThatContainersWithoutAnySlot() throws Exception {
        Allocation other = second();
        String usage = ProcessIdentity.ofUsageFile(ledger.directory(other).resolve(AllocationFiles.USAGE))
                .orElseThrow();
        identities.put(7000, List.of(usage, "cgroup:/pod-b", "mntns:b"));
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(7000, 3 * GIB)));
        GpuProcessAudit audit = audit(true);

        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.CONTAINER_MEMORY_OVER_QUOTA);
            assertThat(finding.allocationId()).isEqualTo(other.id());
            assertThat(finding.pod()).isEqualTo("train");
        });
        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.NO_SHIM);
            assertThat(finding.allocationId()).isEqualTo(other.id());
        });
        assertThat(killed).containsExactly(7000, 7000);
    }

    /**
     * The usage file is the container's to truncate, also after the audit mapped it: the audit reads no further
     * than the file (no fault), and the container's processes are still its own by their usage mount.
     */
    @Test
    void aUsageFileTruncatedUnderTheAuditsMappingNeitherStopsTheAuditNorHidesTheContainer() throws Exception {
        java.nio.file.Path file = ledger.directory(share).resolve(AllocationFiles.USAGE);
        String usage = ProcessIdentity.ofUsageFile(file).orElseThrow();
        identities.put(4242, List.of(usage, "cgroup:/pod-a", "mntns:a"));
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, GIB)));
        GpuProcessAudit audit = audit(true);
        assertThat(audit.auditOnce()).isEmpty(); // mapped now

        try (var channel = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.WRITE)) {
            channel.truncate(100);
        }
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, 3 * GIB)));
        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.CONTAINER_MEMORY_OVER_QUOTA);
            assertThat(finding.allocationId()).isEqualTo(share.id());
        });
        assertThat(killed).containsExactly(4242);
    }

    /** The agent's (and the host's) cgroup and namespace are never a container's, even if a slot points there. */
    @Test
    void aHostProcessIsNeverAttributedToAContainerThroughTheAgentsOwnCgroup() {
        identities.put(4242, List.of("cgroup:/agent", "mntns:host"));
        identities.put(6000, List.of("cgroup:/agent", "mntns:host"));
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, GIB), new GpuProcess(6000, 3 * GIB)));
        GpuProcessAudit audit = audit(false);

        assertThat(audit.auditOnce()).isEmpty();
        assertThat(audit.auditOnce()).singleElement().satisfies(finding -> {
            assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.NO_SHIM);
            assertThat(finding.hostPid()).isEqualTo(6000);
            assertThat(finding.allocationId()).as("belongs to no allocation").isEmpty();
        });
    }

    /** A slot forged to name another tenant's process decides nothing: that process is neither counted nor killed. */
    @Test
    void aSlotForgedToNameAnotherTenantsProcessGetsThatProcessNeitherCountedNorKilled() throws Exception {
        Allocation other = second();
        try (ShimLikeWriter forger = new ShimLikeWriter(ledger.directory(other).resolve(AllocationFiles.USAGE))) {
            forger.claim(4242, 1); // the victim's pid, in the attacker's usage file
        }
        identities.put(4242, List.of("cgroup:/pod-a", "mntns:a"));
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, 3 * GIB)));
        GpuProcessAudit audit = audit(true);

        audit.auditOnce();
        assertThat(audit.auditOnce()).isEmpty();
        assertThat(killed).isEmpty();
    }

    /** NVML's GPU time beyond what the grant allowed over a whole window (10 s) is a compute finding. */
    @Test
    void aContainerTakingMoreGpuTimeThanItsGrantIsReportedAndKilledByPolicy() throws Exception {
        identities.put(4242, List.of("cgroup:/pod-a", "mntns:a"));
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, GIB)));
        GpuProcessAudit audit = audit(true);
        assertThat(audit.auditOnce()).isEmpty(); // opens the window

        try (AllocationFiles agent = AllocationFiles.openAsWriter(ledger.directory(share))) {
            for (int pass = 0; pass < 2; pass++) {
                now += 5_000_000_000L; // passes 5 s apart
                agent.control().addTokenGrant(0, 1_250_000_000L); // the 250/1000 grant of those 5 s
                busy.put(FakeNvml.uuid(0), Map.of(4242, 4_500_000_000L)); // NVML: 4.5 s of them
                List<AuditFinding> findings = audit.auditOnce();
                if (pass == 0) {
                    assertThat(findings).as("half a window: not judged yet").isEmpty();
                } else {
                    assertThat(findings).singleElement().satisfies(finding -> {
                        assertThat(finding.reason()).isEqualTo(AuditFinding.Reason.COMPUTE_OVER_QUOTA);
                        assertThat(finding.describe())
                                .contains("NVML counts 9000 ms of GPU time in the last "
                                        + "10000 ms, the grant allowed 2500 ms");
                        assertThat(finding.killed()).isTrue();
                    });
                }
            }
        }
        assertThat(killed).containsExactly(4242);
    }

    /** A container running somewhat ahead of its grant (the shim's per-launch estimate) is within tolerance. */
    @Test
    void gpuTimeWithinTheToleranceOfTheGrantIsNotAFinding() throws Exception {
        identities.put(4242, List.of("cgroup:/pod-a", "mntns:a"));
        nvml.put(FakeNvml.uuid(0), List.of(new GpuProcess(4242, GIB)));
        GpuProcessAudit audit = audit(true);
        audit.auditOnce();
        try (AllocationFiles agent = AllocationFiles.openAsWriter(ledger.directory(share))) {
            for (int pass = 0; pass < 6; pass++) {
                now += 5_000_000_000L;
                agent.control().addTokenGrant(0, 1_250_000_000L);
                busy.put(FakeNvml.uuid(0), Map.of(4242, 1_800_000_000L)); // 44 % ahead
                assertThat(audit.auditOnce()).isEmpty();
            }
        }
        assertThat(killed).isEmpty();
    }
}
