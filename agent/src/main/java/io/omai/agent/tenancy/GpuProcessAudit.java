package io.omai.agent.tenancy;

import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuProcesses;
import io.omai.agent.gpu.NvmlException;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.quota.audit.AuditFinding;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.IntPredicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Trust, but verify: compares what NVML sees on every shared GPU (a GPU with at least one allocation) with what
 * the allocations' shims report. A process NVML shows there that holds no slot in any of that GPU's allocations
 * runs without the shim; a process whose NVML memory exceeds its allocation's quota by more than the driver's
 * own context memory ({@link #CONTEXT_SLACK_BYTES}) escaped it. A finding must be seen on two passes in a row
 * (a process between its first driver call and its shim slot, or one just exiting, is not a finding); then it is
 * reported once per process, and with {@code kill} the process gets SIGKILL.
 */
public final class GpuProcessAudit {
    private static final Logger log = LoggerFactory.getLogger(GpuProcessAudit.class);
    /** Memory the driver allocates for a process's context and modules, which the shim does not count. */
    public static final long CONTEXT_SLACK_BYTES = 512L << 20;

    /** How a caught process is dealt with. */
    public interface Killer {
        /** Sends SIGKILL; false when the process was gone or could not be signalled. */
        boolean kill(int hostPid);

        /** The host's own: SIGKILL through {@link ProcessHandle#destroyForcibly()}. */
        Killer SIGKILL = pid -> ProcessHandle.of(pid).map(ProcessHandle::destroyForcibly).orElse(false);
    }

    /** What NVML shows running on a GPU ({@link GpuProcesses#running} in the daemon). */
    @FunctionalInterface
    public interface ProcessSource {
        List<GpuProcesses.GpuProcess> running(GpuDevice gpu) throws NvmlException;
    }

    private record Key(AuditFinding.Reason reason, String gpuUuid, int hostPid) {}

    private final AllocationLedger ledger;
    private final ProcessSource processes;
    private final boolean kill;
    private final Killer killer;
    private final IntPredicate isSelf;
    private Set<Key> seenLastPass = Set.of();
    private final Set<Key> reported = new HashSet<>();

    /**
     * @param kill whether caught processes are killed (policy {@code kill}) or only reported ({@code report})
     */
    public GpuProcessAudit(AllocationLedger ledger, ProcessSource processes, boolean kill, Killer killer) {
        this.ledger = Objects.requireNonNull(ledger, "ledger");
        this.processes = Objects.requireNonNull(processes, "processes");
        this.kill = kill;
        this.killer = Objects.requireNonNull(killer, "killer");
        long self = ProcessHandle.current().pid();
        this.isSelf = pid -> pid == self;
    }

    /** One pass over every shared GPU; returns the findings reported in this pass (each process once). */
    public synchronized List<AuditFinding> auditOnce() {
        Map<String, List<Allocation>> byGpu = new HashMap<>();
        for (Allocation allocation : ledger.allocations()) {
            for (String uuid : allocation.gpuUuids()) {
                byGpu.computeIfAbsent(uuid, u -> new ArrayList<>()).add(allocation);
            }
        }
        Set<Key> seen = new HashSet<>();
        List<AuditFinding> findings = new ArrayList<>();
        for (GpuDevice gpu : ledger.gpus()) {
            List<Allocation> sharing = byGpu.get(gpu.uuid());
            if (sharing == null) {
                continue; // not shared: nothing to compare with
            }
            List<GpuProcesses.GpuProcess> running;
            try {
                running = processes.running(gpu);
            } catch (NvmlException e) {
                log.debug("event=audit_skipped gpu={} reason=\"{}\"", gpu.uuid(), e.getMessage());
                continue;
            }
            Map<Integer, Slotted> slotted = slots(gpu, sharing);
            for (GpuProcesses.GpuProcess process : running) {
                if (isSelf.test(process.hostPid())) {
                    continue;
                }
                Slotted owner = slotted.get(process.hostPid());
                if (owner == null) {
                    check(new Key(AuditFinding.Reason.NO_SHIM, gpu.uuid(), process.hostPid()), process, null, 0, seen,
                            findings);
                } else if (owner.limitBytes() >= 0 && process.usedBytes() != GpuProcesses.MEMORY_NOT_AVAILABLE
                        && process.usedBytes() > owner.limitBytes() + CONTEXT_SLACK_BYTES) {
                    check(new Key(AuditFinding.Reason.MEMORY_OVER_QUOTA, gpu.uuid(), process.hostPid()), process,
                            owner.allocation(), owner.limitBytes(), seen, findings);
                }
            }
        }
        seenLastPass = seen;
        reported.retainAll(seen); // a process that stopped misbehaving (or exited) may be reported again later
        return findings;
    }

    private void check(Key key, GpuProcesses.GpuProcess process, Allocation allocation, long limit, Set<Key> seen,
                       List<AuditFinding> findings) {
        seen.add(key);
        if (!seenLastPass.contains(key) || reported.contains(key)) {
            return;
        }
        reported.add(key);
        boolean killed = kill && killer.kill(process.hostPid());
        var claim = allocation == null ? null : allocation.claim();
        String[] owner = allocation == null ? new String[0] : allocation.owner().split("/", 3);
        String namespace = claim != null && !claim.namespace().isEmpty() ? claim.namespace()
                : owner.length == 3 ? owner[0] : "";
        String pod = claim != null && !claim.pod().isEmpty() ? claim.pod() : owner.length == 3 ? owner[1] : "";
        AuditFinding finding = new AuditFinding(key.reason(), key.gpuUuid(), process.hostPid(),
                command(process.hostPid()), process.usedBytes(), limit, namespace, pod,
                claim == null ? "" : claim.podUid(), allocation == null ? "" : allocation.id(), killed, "");
        log.warn("event=audit_violation reason={} gpu={} pid={} pod={}/{} allocation={} killed={} detail=\"{}\"",
                finding.reason().name().toLowerCase(java.util.Locale.ROOT), finding.gpuUuid(), finding.hostPid(),
                namespace, pod, finding.allocationId(), killed, finding.describe());
        findings.add(finding);
    }

    private record Slotted(Allocation allocation, long limitBytes) {}

    /** Host pid → the allocation whose usage file has a slot for it, with that allocation's limit on this GPU. */
    private Map<Integer, Slotted> slots(GpuDevice gpu, List<Allocation> sharing) {
        Map<Integer, Slotted> slotted = new HashMap<>();
        for (Allocation allocation : sharing) {
            long limit = limitOn(allocation, gpu.uuid()).orElse(-1L);
            try (AllocationFiles files = AllocationFiles.openReadOnly(ledger.directory(allocation))) {
                for (UsageSnapshot.Slot slot : files.usage().read().slots()) {
                    // the reaper maps a slot to its host pid; until it has, the pid is the host pid when the
                    // container shares the host's pid namespace
                    slotted.put(slot.hostPid() != 0 ? slot.hostPid() : slot.pid(), new Slotted(allocation, limit));
                }
            } catch (IOException | RuntimeException e) {
                log.debug("event=audit_usage_unreadable allocation={} reason=\"{}\"", allocation.id(), e.toString());
            }
        }
        return slotted;
    }

    private Optional<Long> limitOn(Allocation allocation, String uuid) {
        if (allocation.gpuUuids().stream().anyMatch(u -> ledger.gpu(u) == null)) {
            return Optional.empty();
        }
        return ledger.spec(allocation).devices().stream().filter(q -> q.uuid().equals(uuid))
                .filter(q -> !q.memoryUnlimited()).map(DeviceQuota::memoryLimitBytes).findFirst();
    }

    private static String command(int pid) {
        return ProcessHandle.of(pid).flatMap(h -> h.info().commandLine().or(() -> h.info().command())).orElse("");
    }
}
