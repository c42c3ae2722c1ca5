package io.omai.agent.node;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuProcesses;
import io.omai.agent.gpu.NvmlException;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.lifecycle.Loops;
import io.omai.agent.quota.DeadProcessReaper;
import io.omai.agent.quota.LinuxProcessTable;
import io.omai.agent.quota.UsageProblem;
import io.omai.agent.quota.audit.AuditFinding;
import io.omai.agent.quota.compute.ComputeControlLoop;
import io.omai.agent.quota.compute.ComputeTarget;
import io.omai.agent.quota.compute.NvmlProcessGpuTime;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.RegionFormatException;
import io.omai.agent.tenancy.GpuProcessAudit;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's side of the shared-memory quotas for every allocation in the ledger: the compute controller (one
 * per GPU, granting GPU time) and the dead-process reaper (returning a dead process's bytes, and recording the
 * host pid of every live one so NVML's samples can be matched to containers). It keeps each allocation's files
 * mapped while the ledger holds it, as the one writer of its control file (the allocation's writer lock is held
 * while mapped), and unmaps them once it is released.
 *
 * <p>Two threads use the mappings: the compute loop and the reaper. Each asks for the current files at the start
 * of its pass and uses them until the pass ends. A released allocation's files are therefore retired, not closed:
 * they are unmapped only once both users have started a later pass, so neither can write through a mapping that
 * is gone (a closed arena answers "Already closed" to any access).
 *
 * <p>A usage file found tampered with (the reaper's {@link UsageProblem}) becomes an {@link AuditFinding}
 * (reported through the same path as the NVML audit's: event, metric) and one log line, and then, by
 * {@code audit.onTamper}: nothing more, a freeze or SIGKILL. A freeze writes a memory limit of 0 into the
 * allocation's control file (the shim's reserve can never pass it), makes compute enforced in hard-cap mode and
 * stops the grant where it is (heartbeats go on, so the shim does not fall back to its own quota), and leaves a
 * {@value #FROZEN_MARKER} file in the allocation's directory (never mounted into the container): the freeze holds
 * across passes and agent restarts until the allocation is released or an operator deletes that file.
 */
final class QuotaEnforcement implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(QuotaEnforcement.class);

    /** The threads that use the mappings, each through its own pass. */
    enum User {
        COMPUTE,
        REAPER
    }

    /** Files of a released allocation, kept until every user's pass that may hold them has ended. */
    private record Retired(String allocationId, AllocationFiles files, Map<User, Long> passesAtRetirement) {}

    private final AllocationLedger ledger;

    @GuardedBy("this")
    private final Map<String, AllocationFiles> open = new HashMap<>();

    @GuardedBy("this")
    private final List<Retired> retired = new ArrayList<>();

    @GuardedBy("this")
    private final Map<User, Long> passes = new EnumMap<>(User.class);

    @GuardedBy("this")
    private final Set<String> unreadable = new HashSet<>();

    private final ComputeControlLoop computeLoop;
    private final DeadProcessReaper reaper;
    private final AgentConfig.TamperAction onTamper;
    private final GpuProcesses gpuProcesses;
    private final GpuProcessAudit.Killer killer;
    /** Allocations frozen now (their control files say so); the marker file is the lasting record. */
    @GuardedBy("this")
    private final Set<String> frozen = new HashSet<>();
    /** Where findings go; null until {@link #reportTo}, and findings made before wait in {@link #pending}. */
    @GuardedBy("pending")
    private Consumer<AuditFinding> findings;

    private final List<AuditFinding> pending = new ArrayList<>();

    /** The file whose presence in an allocation's directory keeps it frozen. */
    static final String FROZEN_MARKER = "frozen";

    QuotaEnforcement(AllocationLedger ledger, NvmlLibrary nvml, long periodNanos) {
        this(ledger, nvml, periodNanos, AgentConfig.TamperAction.FREEZE, GpuProcessAudit.Killer.SIGKILL);
    }

    QuotaEnforcement(
            AllocationLedger ledger,
            NvmlLibrary nvml,
            long periodNanos,
            AgentConfig.TamperAction onTamper,
            GpuProcessAudit.Killer killer) {
        this.ledger = ledger;
        for (User user : User.values()) {
            passes.put(user, 0L);
        }
        this.computeLoop = new ComputeControlLoop(periodNanos, this::targetsByGpu, new NvmlProcessGpuTime(nvml));
        this.reaper = new DeadProcessReaper(new LinuxProcessTable(), this::liveFiles);
        this.onTamper = onTamper;
        this.gpuProcesses = new GpuProcesses(nvml);
        this.killer = killer;
        reaper.onProblem(this::usageProblem);
    }

    /** Starts the reaper and the compute loop, both registered for {@code /healthz}. */
    void start(Loops loops) {
        loops.add(reaper.start(DeadProcessReaper.DEFAULT_PERIOD));
        loops.add(computeLoop.start());
    }

    void start() {
        start(new Loops());
    }

    /**
     * Where findings about usage files go (the tenancy services' report: event and metric). Findings of the
     * passes before (the reaper starts first) are handed over now: each is reported once, so none may be lost.
     */
    void reportTo(Consumer<AuditFinding> sink) {
        List<AuditFinding> earlier;
        synchronized (pending) {
            findings = sink;
            earlier = List.copyOf(pending);
            pending.clear();
        }
        earlier.forEach(finding -> deliver(sink, finding));
    }

    private void report(AuditFinding finding) {
        Consumer<AuditFinding> sink;
        synchronized (pending) {
            sink = findings;
            if (sink == null) {
                pending.add(finding);
                return;
            }
        }
        deliver(sink, finding);
    }

    private static void deliver(Consumer<AuditFinding> sink, AuditFinding finding) {
        try {
            sink.accept(finding);
        } catch (RuntimeException e) {
            log.warn("event=finding_not_reported allocation={} error=\"{}\"", finding.allocationId(), e.toString());
        }
    }

    /** Allocations frozen now. */
    synchronized Set<String> frozen() {
        return Set.copyOf(frozen);
    }

    ComputeControlLoop computeLoop() {
        return computeLoop;
    }

    DeadProcessReaper reaper() {
        return reaper;
    }

    /**
     * The files of every allocation the ledger holds now, for {@code user}'s next pass: the previous pass of that
     * user has ended. Released allocations are retired and unmapped once no user's pass can still hold them.
     */
    synchronized Map<Allocation, AllocationFiles> current(User user) {
        passes.merge(user, 1L, Long::sum);
        Map<Allocation, AllocationFiles> current = new LinkedHashMap<>();
        Set<String> held = new HashSet<>();
        for (Allocation allocation : ledger.allocations()) {
            held.add(allocation.id());
            AllocationFiles files = open.get(allocation.id());
            if (files == null) {
                try {
                    files = AllocationFiles.openAsWriter(ledger.directory(allocation));
                    open.put(allocation.id(), files);
                    unreadable.remove(allocation.id());
                } catch (IOException | RuntimeException e) {
                    if (unreadable.add(allocation.id())) {
                        log.warn(
                                "event=allocation_files_unreadable allocation={} error=\"{}\"",
                                allocation.id(),
                                e.getMessage());
                    }
                    continue;
                }
            }
            current.put(allocation, files);
            keepFreeze(allocation, files);
        }
        frozen.retainAll(held);
        Map<User, Long> passesNow = new EnumMap<>(passes);
        List<Retired> retiring = new ArrayList<>();
        open.entrySet().removeIf(entry -> {
            if (held.contains(entry.getKey())) {
                return false;
            }
            // the other users' passes still running may hold it; this user's pass now starting does not
            Map<User, Long> mayHold = new EnumMap<>(passesNow);
            mayHold.merge(user, -1L, Long::sum);
            retiring.add(new Retired(entry.getKey(), entry.getValue(), mayHold));
            return true;
        });
        retired.addAll(retiring);
        retired.removeIf(r -> {
            for (User u : User.values()) {
                if (passesNow.get(u) <= r.passesAtRetirement().get(u)) {
                    return false; // u has not started a pass since: it may still be using the files
                }
            }
            r.files().close();
            log.debug("event=allocation_files_unmapped allocation={}", r.allocationId());
            return true;
        });
        unreadable.retainAll(held);
        return current;
    }

    /**
     * A frozen allocation stays frozen while its marker file exists: its control file is rewritten if anything
     * (a spare's reuse, {@code omai set}) put limits back. Once an operator deletes the marker, the ledger's
     * limits are written back.
     */
    @GuardedBy("this")
    private void keepFreeze(Allocation allocation, AllocationFiles files) {
        boolean marked = Files.exists(marker(allocation));
        try {
            if (marked) {
                ControlSnapshot control = files.control().read();
                boolean holds = control.computeEnforced()
                        && control.devices().stream()
                                .allMatch(d -> d.memoryLimitBytes() == 0 && d.mode() == ComputeMode.HARD_CAP);
                if (!holds) {
                    files.control().update(frozenSpec(ledger.spec(allocation)));
                }
                if (frozen.add(allocation.id())) {
                    log.warn(
                            "event=allocation_frozen allocation={} pod={} gpus={} marker={}",
                            allocation.id(),
                            podOf(allocation),
                            allocation.gpuUuids(),
                            marker(allocation));
                }
            } else if (frozen.remove(allocation.id())) {
                files.control().update(ledger.spec(allocation));
                log.info(
                        "event=allocation_unfrozen allocation={} pod={} gpus={} reason=marker_removed",
                        allocation.id(),
                        podOf(allocation),
                        allocation.gpuUuids());
            }
        } catch (RegionFormatException | RuntimeException e) {
            log.warn("event=freeze_not_applied allocation={} error=\"{}\"", allocation.id(), e.toString());
        }
    }

    /** The allocation's limits with no memory at all and compute enforced as a hard cap (its grant stops). */
    static AllocationSpec frozenSpec(AllocationSpec spec) {
        List<DeviceQuota> devices = new ArrayList<>();
        for (DeviceQuota d : spec.devices()) {
            devices.add(new DeviceQuota(d.uuid(), d.hostIndex(), 0L, d.computeQuotaMilli(), ComputeMode.HARD_CAP));
        }
        return new AllocationSpec(spec.label(), devices, true, spec.computePeriodUs());
    }

    private Path marker(Allocation allocation) {
        return ledger.directory(allocation).resolve(FROZEN_MARKER);
    }

    private static String podOf(Allocation allocation) {
        return allocation.podName().isEmpty() ? "unknown" : allocation.podNamespace() + "/" + allocation.podName();
    }

    /** A problem the reaper found in a usage file: a finding, a log line and the configured action. */
    private void usageProblem(AllocationFiles files, UsageProblem problem) {
        Allocation allocation;
        synchronized (this) {
            String id = open.entrySet().stream()
                    .filter(e -> e.getValue() == files)
                    .map(Map.Entry::getKey)
                    .findFirst()
                    .orElse(null);
            allocation = id == null
                    ? null
                    : ledger.allocations().stream()
                            .filter(a -> a.id().equals(id))
                            .findFirst()
                            .orElse(null);
        }
        if (allocation == null) {
            return; // released meanwhile
        }
        AllocationSpec spec = ledger.spec(allocation);
        String gpu = problem.device() >= 0 && problem.device() < spec.devices().size()
                ? spec.devices().get(problem.device()).uuid()
                : String.join(",", allocation.gpuUuids());
        long limit = problem.device() >= 0 && problem.device() < spec.devices().size()
                ? spec.devices().get(problem.device()).memoryLimitBytes()
                : 0;
        boolean tampered = problem.kind() == UsageProblem.Kind.TAMPERED;
        AgentConfig.TamperAction action = tampered ? onTamper : AgentConfig.TamperAction.REPORT;
        String done = "";
        List<Integer> killed = List.of();
        switch (action) {
            case REPORT -> {}
            case FREEZE -> done = freeze(allocation, files, problem.detail());
            case KILL -> {
                killed = kill(allocation, files);
                done = "killed host pids " + killed;
            }
        }
        String pod = podOf(allocation);
        AuditFinding finding = new AuditFinding(
                tampered ? AuditFinding.Reason.USAGE_TAMPERED : AuditFinding.Reason.SLOTS_EXHAUSTED,
                gpu,
                0,
                "",
                -1,
                limit,
                allocation.podNamespace(),
                allocation.podName(),
                allocation.claim().podUid(),
                allocation.id(),
                !killed.isEmpty(),
                problem.detail() + (done.isEmpty() ? "" : "; " + done));
        log.warn(
                "event={} allocation={} pod={} gpu={} action={} detail=\"{}\"",
                tampered ? "usage_tampered" : "usage_slots_exhausted",
                allocation.id(),
                pod,
                gpu,
                action.name().toLowerCase(java.util.Locale.ROOT),
                finding.detail());
        report(finding);
    }

    /** Freezes now (marker first, so a crash in between still freezes at the next pass). */
    private String freeze(Allocation allocation, AllocationFiles files, String why) {
        try {
            Files.writeString(
                    marker(allocation), "frozen: " + why + "\ndelete this file to unfreeze\n", StandardCharsets.UTF_8);
        } catch (IOException e) {
            log.warn("event=freeze_marker_not_written allocation={} error=\"{}\"", allocation.id(), e.toString());
        }
        synchronized (this) {
            keepFreeze(allocation, files);
        }
        return "frozen (memory limit 0, no more GPU time) until released or " + marker(allocation) + " is deleted";
    }

    /**
     * SIGKILL to the allocation's processes: the live owners of its slots and the processes NVML shows on its
     * GPUs, each only if it is proven to be in this container (its {@code /run/omai/usage} is this very file), so
     * a forged slot can never point the agent at another tenant's process.
     */
    private List<Integer> kill(Allocation allocation, AllocationFiles files) {
        Set<Integer> candidates = new TreeSet<>(reaper.liveHostPids(files.usage()));
        for (String uuid : allocation.gpuUuids()) {
            GpuDevice gpu = ledger.gpu(uuid);
            if (gpu == null) {
                continue;
            }
            try {
                gpuProcesses.running(gpu).forEach(p -> candidates.add(p.hostPid()));
            } catch (NvmlException | RuntimeException e) {
                log.warn(
                        "event=tamper_kill_nvml_unavailable allocation={} gpu={} error=\"{}\"",
                        allocation.id(),
                        uuid,
                        e.getMessage());
            }
        }
        long self = ProcessHandle.current().pid();
        List<Integer> killed = new ArrayList<>();
        for (int pid : candidates) {
            if (pid > 1 && pid != self && inContainerOf(pid, files.usage().path()) && killer.kill(pid)) {
                killed.add(pid);
            }
        }
        return killed;
    }

    /** True when process {@code pid} sees {@code usage} at the shim's path: it runs in that container. */
    static boolean inContainerOf(int pid, Path usage) {
        try {
            return Files.isSameFile(Path.of("/proc", Integer.toString(pid), "root", "run", "omai", "usage"), usage);
        } catch (IOException | SecurityException e) {
            return false;
        }
    }

    /** Files mapped now, retired ones included (tests). */
    synchronized int mappedCount() {
        return open.size() + retired.size();
    }

    List<AllocationFiles> liveFiles() {
        return new ArrayList<>(current(User.REAPER).values());
    }

    synchronized Map<String, List<ComputeTarget>> targetsByGpu() { // reads frozen under the lock
        Map<String, List<ComputeTarget>> byGpu = new LinkedHashMap<>();
        current(User.COMPUTE).forEach((allocation, files) -> {
            // Device records are in the order the ledger wrote them into the control file.
            List<DeviceQuota> records = ledger.spec(allocation).devices();
            boolean isFrozen = frozen.contains(allocation.id());
            for (int i = 0; i < records.size(); i++) {
                byGpu.computeIfAbsent(records.get(i).uuid(), uuid -> new ArrayList<>())
                        .add(new ComputeTarget(allocation.id(), files, i, isFrozen));
            }
        });
        return byGpu;
    }

    @Override
    public void close() {
        computeLoop.close();
        reaper.close();
        synchronized (this) {
            open.values().forEach(AllocationFiles::close);
            open.clear();
            retired.forEach(r -> r.files().close());
            retired.clear();
        }
    }
}
