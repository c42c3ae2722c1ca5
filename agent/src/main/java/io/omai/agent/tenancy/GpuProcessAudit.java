package io.omai.agent.tenancy;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuProcesses;
import io.omai.agent.gpu.NvmlException;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.quota.audit.AuditFinding;
import io.omai.agent.quota.audit.ProcessIdentity;
import io.omai.agent.quota.compute.ProcessGpuTime;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.RegionFormatException;
import io.omai.agent.quota.shm.UsageRegion;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.LongSupplier;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * NVML is the ground truth: on every shared GPU (a GPU with at least one allocation) the audit compares what the
 * driver sees with the allocations' quotas, and trusts nothing a container can write for the verdict.
 *
 * <p><b>Who owns a process.</b> The usage files' slots name the pids of shimmed processes; the kernel names each
 * process's cgroup and mount namespace ({@link ProcessIdentity}). A cgroup or mount namespace that slots of exactly
 * one allocation point into is that container's, and every process in it is the container's, whatever its slot
 * says (zeroed, forged, absent: a process without the shim). Identities shared with the agent or with pid 1 (the
 * host) are never a container's; one claimed by several allocations decides nothing. Without an identity the
 * slot decides; a process claimed by several allocations and by no identity is left out (and logged), never
 * counted against or killed for a container it may not belong to.
 *
 * <p><b>What is a finding.</b>
 * <ul>
 *   <li>{@code NO_SHIM}: a process on the GPU holds no slot — of no allocation (named as such), or of the
 *       container whose cgroup it is in. Seen on two passes in a row (a process between its first driver call and
 *       its shim slot is not a finding).</li>
 *   <li>{@code CONTAINER_MEMORY_OVER_QUOTA}: a container's processes on one GPU together hold more than its quota
 *       there plus one context each ({@link #CONTEXT_SLACK_BYTES}), by NVML. One pass: under a working shim this
 *       never happens, so it is reported (and killed) within one audit interval.</li>
 *   <li>{@code MEMORY_OVER_QUOTA}: one process holds more than its container's quota plus one context while the
 *       container as a whole is within its slack (its other processes hold little). One pass.</li>
 *   <li>{@code COMPUTE_OVER_QUOTA}: NVML's per-process GPU time of a container's processes over a window of at
 *       least {@link #COMPUTE_WINDOW_NANOS} exceeds the grant the agent gave it over the same window by more than
 *       {@link #COMPUTE_TOLERANCE_PERCENT} (and 5 % of the window, for kernels that straddle a sample).</li>
 * </ul>
 * A finding is reported once while it lasts; with {@code kill} the process (for container findings, every process
 * of the container on that GPU) gets SIGKILL.
 */
public final class GpuProcessAudit implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(GpuProcessAudit.class);
    /** Memory the driver allocates for a process's context and modules, which the shim does not count. */
    public static final long CONTEXT_SLACK_BYTES = 512L << 20;
    /** How far NVML's GPU time may run ahead of the grant (plus 5 % of the window) before it is a finding. */
    public static final int COMPUTE_TOLERANCE_PERCENT = 50;
    /**
     * How long GPU time and grants are summed before they are compared. The shim charges an estimated cost per
     * launch that the controller calibrates from NVML, so over a fraction of a second a container within its quota
     * can run well ahead of its grant (twice, measured on the simulator); over ten seconds that evens out.
     */
    public static final long COMPUTE_WINDOW_NANOS = 10_000_000_000L;

    /** How a caught process is dealt with. */
    public interface Killer {
        /** Sends SIGKILL; false when the process was gone or could not be signalled. */
        boolean kill(int hostPid);

        /** The host's own: SIGKILL through {@link ProcessHandle#destroyForcibly()}. */
        Killer SIGKILL =
                pid -> ProcessHandle.of(pid).map(ProcessHandle::destroyForcibly).orElse(false);
    }

    /** What NVML shows running on a GPU ({@link GpuProcesses#running} in the daemon). */
    @FunctionalInterface
    public interface ProcessSource {
        List<GpuProcesses.GpuProcess> running(GpuDevice gpu) throws NvmlException;
    }

    private record Key(AuditFinding.Reason reason, String gpuUuid, int hostPid, String allocationId) {}

    /** A process on a GPU with the container it belongs to (null: none) and whether it holds a slot there. */
    private record Attributed(GpuProcesses.GpuProcess process, Allocation owner, boolean slotted) {}

    /** The audit's read-only mapping of an allocation's files and the identity of the usage file it maps. */
    private record Mapped(AllocationFiles files, Object fileKey) {}

    /** GPU time summed since {@code startNanos}, when the grant was {@code grantAtStart}. */
    private record ComputeWindow(long startNanos, long grantAtStart, long busyNs) {}

    /** What one pass read of an allocation: its slots and the grants its control file shows. */
    private record Reading(List<UsageSnapshot.Slot> slots, ControlSnapshot control, String usageIdentity) {}

    private final AllocationLedger ledger;
    private final ProcessSource processes;
    private final ProcessIdentity identities;
    private final ProcessGpuTime gpuTime; // null: no compute check
    private final LongSupplier nanoClock;
    private final boolean kill;
    private final Killer killer;
    private final int self;
    private final long ownPidNamespace;

    @GuardedBy("this")
    private Set<Key> seenLastPass = Set.of();

    @GuardedBy("this")
    private final Set<Key> reported = new HashSet<>();

    @GuardedBy("this")
    private final Set<Integer> ambiguousLogged = new HashSet<>();
    /** (allocation, GPU) → the grant the control file showed at the previous pass, and when. */
    @GuardedBy("this")
    private final Map<String, ComputeWindow> windows = new HashMap<>();
    /** allocation id → the audit's own mapping of its files; only the audit's (synchronized) pass uses them. */
    @GuardedBy("this")
    private final Map<String, Mapped> mapped = new HashMap<>();

    /**
     * Memory checks only, with the host's {@code /proc}.
     *
     * @param kill whether caught processes are killed (policy {@code kill}) or only reported ({@code report})
     */
    public GpuProcessAudit(AllocationLedger ledger, ProcessSource processes, boolean kill, Killer killer) {
        this(ledger, processes, ProcessIdentity.PROC, null, System::nanoTime, kill, killer);
    }

    /**
     * @param gpuTime NVML's per-process GPU time, an instance of the audit's own (it keeps a window per GPU);
     *     null to leave compute unchecked
     */
    public GpuProcessAudit(
            AllocationLedger ledger,
            ProcessSource processes,
            ProcessIdentity identities,
            ProcessGpuTime gpuTime,
            LongSupplier nanoClock,
            boolean kill,
            Killer killer) {
        this.ledger = Objects.requireNonNull(ledger, "ledger");
        this.processes = Objects.requireNonNull(processes, "processes");
        this.identities = Objects.requireNonNull(identities, "identities");
        this.gpuTime = gpuTime;
        this.nanoClock = Objects.requireNonNull(nanoClock, "nanoClock");
        this.kill = kill;
        this.killer = Objects.requireNonNull(killer, "killer");
        this.self = (int) ProcessHandle.current().pid();
        this.ownPidNamespace = pidNamespaceInode();
    }

    /** The inode of the agent's pid namespace, 0 when /proc does not say. */
    private static long pidNamespaceInode() {
        try {
            String link = java.nio.file.Files.readSymbolicLink(java.nio.file.Path.of("/proc/self/ns/pid"))
                    .toString();
            return Long.parseLong(link.substring(link.indexOf('[') + 1, link.indexOf(']')));
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /** One pass over every shared GPU; returns the findings reported in this pass (each once while it lasts). */
    public synchronized List<AuditFinding> auditOnce() {
        Map<String, List<Allocation>> byGpu = new HashMap<>();
        Set<String> held = new HashSet<>();
        for (Allocation allocation : ledger.allocations()) {
            held.add(allocation.id());
            for (String uuid : allocation.gpuUuids()) {
                byGpu.computeIfAbsent(uuid, u -> new ArrayList<>()).add(allocation);
            }
        }
        unmapReleased(held);
        Map<Integer, List<String>> identityCache = new HashMap<>(); // /proc is read once per pid and pass
        Set<String> host = new HashSet<>(identities.of(self));
        host.addAll(identities.of(1));
        Map<String, Reading> readings = new HashMap<>();
        Set<Key> seen = new HashSet<>();
        List<AuditFinding> findings = new ArrayList<>();
        Set<String> granted = new HashSet<>();
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
            for (Allocation allocation : sharing) {
                readings.computeIfAbsent(allocation.id(), id -> read(allocation));
            }
            Owners owners = new Owners(sharing, readings, host, identityCache, ambiguousLogged);
            List<Attributed> attributed = new ArrayList<>();
            for (GpuProcesses.GpuProcess process : running) {
                if (process.hostPid() != self) {
                    owners.attribute(process).ifPresent(attributed::add);
                }
            }
            Set<String> overQuota = checkContainerMemory(gpu, attributed, seen, findings);
            checkProcesses(gpu, attributed, overQuota, seen, findings);
            if (gpuTime != null) {
                checkCompute(gpu, sharing, owners, readings, attributed, seen, findings, granted);
            }
        }
        windows.keySet().retainAll(granted);
        seenLastPass = seen;
        reported.retainAll(seen); // a finding that stopped (or whose process exited) may be reported again later
        return findings;
    }

    /** Slots and identities of one GPU's allocations, and the rule that gives each process its container. */
    private final class Owners {
        // keyed by allocation id: an Allocation's hash covers all its device IDs
        private final Map<String, Allocation> byId = new HashMap<>();
        private final Map<Integer, Set<String>> bySlot = new HashMap<>();
        private final Map<String, Set<String>> byIdentity = new HashMap<>();
        private final Set<String> host;
        private final Map<Integer, List<String>> identityCache;
        private final Set<Integer> ambiguousLogged; // the audit's, handed over by its pass under its monitor

        Owners(
                List<Allocation> sharing,
                Map<String, Reading> readings,
                Set<String> host,
                Map<Integer, List<String>> identityCache,
                Set<Integer> ambiguousLogged) {
            this.host = host;
            this.identityCache = identityCache;
            this.ambiguousLogged = ambiguousLogged;
            for (Allocation allocation : sharing) {
                byId.put(allocation.id(), allocation);
                Reading reading = readings.get(allocation.id());
                if (reading == null) {
                    continue;
                }
                // the container's own bind mount of this usage file: no slot needed to know its processes
                byIdentity
                        .computeIfAbsent(reading.usageIdentity(), i -> new HashSet<>())
                        .add(allocation.id());
                for (UsageSnapshot.Slot slot : reading.slots()) {
                    // the reaper maps a slot to its host pid; until it has, the pid is the host pid only when the
                    // container shares the agent's pid namespace (else it names an unrelated host process)
                    if (slot.hostPid() == 0 && slot.pidNsInode() != 0 && slot.pidNsInode() != ownPidNamespace) {
                        continue;
                    }
                    int pid = slot.hostPid() != 0 ? slot.hostPid() : slot.pid();
                    bySlot.computeIfAbsent(pid, p -> new HashSet<>()).add(allocation.id());
                }
            }
            bySlot.forEach((pid, claimants) -> {
                for (String identity : identitiesOf(pid)) {
                    // a usage file is its own allocation's alone: a forged slot must not make it ambiguous
                    if (!host.contains(identity) && !identity.startsWith("usage:")) {
                        byIdentity
                                .computeIfAbsent(identity, i -> new HashSet<>())
                                .addAll(claimants);
                    }
                }
            });
        }

        private List<String> identitiesOf(int pid) {
            return identityCache.computeIfAbsent(pid, identities::of);
        }

        /** Empty when the process is left out: several containers claim it and no identity decides. */
        Optional<Attributed> attribute(GpuProcesses.GpuProcess process) {
            Set<String> claimants = bySlot.getOrDefault(process.hostPid(), Set.of());
            String owner = owner(process.hostPid());
            if (owner == null && claimants.size() > 1) {
                if (ambiguousLogged.add(process.hostPid())) {
                    log.warn(
                            "event=audit_owner_ambiguous pid={} allocations={} detail=\"slots of several "
                                    + "allocations name this process and no cgroup or mount namespace decides; not counted\"",
                            process.hostPid(),
                            claimants.stream().sorted().toList());
                }
                return Optional.empty();
            }
            if (owner == null && claimants.size() == 1) {
                owner = claimants.iterator().next();
            }
            return Optional.of(new Attributed(
                    process, owner == null ? null : byId.get(owner), owner != null && claimants.contains(owner)));
        }

        /**
         * The id of the one container the kernel's identities of {@code pid} point to, else null. The usage file
         * its root shows decides alone; cgroup and mount namespace (learnt from slots) decide when they agree.
         */
        private String owner(int pid) {
            String found = null;
            for (String identity : identitiesOf(pid)) {
                if (identity.startsWith("usage:")) {
                    Set<String> mounted = byIdentity.get(identity);
                    if (mounted != null && mounted.size() == 1) {
                        return mounted.iterator().next();
                    }
                    continue;
                }
                Set<String> claimed = host.contains(identity) ? null : byIdentity.get(identity);
                if (claimed != null && claimed.size() == 1) {
                    String candidate = claimed.iterator().next();
                    if (found != null && !found.equals(candidate)) {
                        return null; // cgroup and mount namespace disagree: neither decides
                    }
                    found = candidate;
                }
            }
            return found;
        }

        /** The container of a pid NVML reported GPU time for (it may have exited since): identity, then slot. */
        Allocation ownerOfSample(int pid) {
            String owner = owner(pid);
            if (owner == null) {
                Set<String> claimants = bySlot.getOrDefault(pid, Set.of());
                owner = claimants.size() == 1 ? claimants.iterator().next() : null;
            }
            return owner == null ? null : byId.get(owner);
        }
    }

    @GuardedBy("this")
    private void checkProcesses(
            GpuDevice gpu,
            List<Attributed> attributed,
            Set<String> overQuota,
            Set<Key> seen,
            List<AuditFinding> findings) {
        for (Attributed a : attributed) {
            GpuProcesses.GpuProcess process = a.process();
            if (!a.slotted()) {
                Key key = new Key(
                        AuditFinding.Reason.NO_SHIM,
                        gpu.uuid(),
                        process.hostPid(),
                        a.owner() == null ? "" : a.owner().id());
                if (confirmed(key, 2, seen)) {
                    boolean killed = kill && killer.kill(process.hostPid());
                    findings.add(report(
                            key,
                            a.owner(),
                            process.hostPid(),
                            process.usedBytes(),
                            0,
                            killed,
                            a.owner() == null ? "" : "it is in the container's cgroup or mount namespace"));
                }
                continue;
            }
            if (overQuota.contains(a.owner().id())) {
                continue; // the container's finding covers its processes
            }
            long limit = limitOn(a.owner(), gpu.uuid()).orElse(-1L);
            if (limit >= 0
                    && process.usedBytes() != GpuProcesses.MEMORY_NOT_AVAILABLE
                    && process.usedBytes() > limit + CONTEXT_SLACK_BYTES) {
                Key key = new Key(
                        AuditFinding.Reason.MEMORY_OVER_QUOTA,
                        gpu.uuid(),
                        process.hostPid(),
                        a.owner().id());
                if (confirmed(key, 1, seen)) {
                    boolean killed = kill && killer.kill(process.hostPid());
                    findings.add(report(key, a.owner(), process.hostPid(), process.usedBytes(), limit, killed, ""));
                }
            }
        }
    }

    /** Returns the containers over their quota on this GPU now (reported now or earlier). */
    @GuardedBy("this")
    private Set<String> checkContainerMemory(
            GpuDevice gpu, List<Attributed> attributed, Set<Key> seen, List<AuditFinding> findings) {
        Set<String> over = new HashSet<>();
        Map<String, Allocation> owners = new HashMap<>();
        Map<String, List<GpuProcesses.GpuProcess>> byOwner = new LinkedHashMap<>();
        for (Attributed a : attributed) {
            if (a.owner() != null && a.process().usedBytes() != GpuProcesses.MEMORY_NOT_AVAILABLE) {
                owners.put(a.owner().id(), a.owner());
                byOwner.computeIfAbsent(a.owner().id(), o -> new ArrayList<>()).add(a.process());
            }
        }
        byOwner.forEach((id, members) -> {
            Allocation owner = owners.get(id);
            long limit = limitOn(owner, gpu.uuid()).orElse(-1L);
            long total = members.stream()
                    .mapToLong(GpuProcesses.GpuProcess::usedBytes)
                    .sum();
            if (limit < 0 || total <= limit + CONTEXT_SLACK_BYTES * members.size()) {
                return;
            }
            over.add(id);
            Key key = new Key(AuditFinding.Reason.CONTAINER_MEMORY_OVER_QUOTA, gpu.uuid(), 0, owner.id());
            if (!confirmed(key, 1, seen)) {
                return;
            }
            boolean killed = killAll(
                    members.stream().map(GpuProcesses.GpuProcess::hostPid).toList());
            findings.add(report(
                    key,
                    owner,
                    0,
                    total,
                    limit,
                    killed,
                    "NVML shows " + members.size()
                            + " process(es): "
                            + members.stream()
                                    .map(p -> "pid " + p.hostPid() + " " + p.usedBytes() + " B")
                                    .collect(Collectors.joining(", "))
                            + "; the usage file says "
                            + usageTotal(owner, gpu.uuid())));
        });
        return over;
    }

    @GuardedBy("this")
    private void checkCompute(
            GpuDevice gpu,
            List<Allocation> sharing,
            Owners owners,
            Map<String, Reading> readings,
            List<Attributed> attributed,
            Set<Key> seen,
            List<AuditFinding> findings,
            Set<String> granted) {
        Map<Integer, Long> busy;
        try {
            busy = gpuTime.busySinceLastSample(gpu.uuid());
        } catch (ProcessGpuTime.GpuTimeUnavailableException e) {
            log.debug("event=audit_compute_skipped gpu={} reason=\"{}\"", gpu.uuid(), e.getMessage());
            return;
        }
        Map<String, Long> busyByOwner = new HashMap<>();
        busy.forEach((pid, ns) -> {
            Allocation owner = owners.ownerOfSample(pid);
            if (owner != null) {
                busyByOwner.merge(owner.id(), ns, Long::sum);
            }
        });
        long now = nanoClock.getAsLong();
        for (Allocation allocation : sharing) {
            Reading reading = readings.get(allocation.id());
            Optional<AllocationSpec> spec = spec(allocation);
            if (reading == null
                    || reading.control() == null
                    || spec.isEmpty()
                    || !spec.get().computeEnforced()) {
                continue;
            }
            Optional<ControlSnapshot.Device> device = reading.control().devices().stream()
                    .filter(d -> d.uuid().equals(gpu.uuid()))
                    .findFirst();
            if (device.isEmpty()) {
                continue;
            }
            String at = allocation.id() + "@" + gpu.uuid();
            granted.add(at);
            long grant = device.get().tokenGrantNs();
            ComputeWindow open = windows.get(at);
            if (open == null) {
                windows.put(at, new ComputeWindow(now, grant, 0)); // the first pass opens the window
                continue;
            }
            long used = open.busyNs() + busyByOwner.getOrDefault(allocation.id(), 0L);
            long window = now - open.startNanos();
            if (window < COMPUTE_WINDOW_NANOS) {
                windows.put(at, new ComputeWindow(open.startNanos(), open.grantAtStart(), used));
                continue;
            }
            windows.put(at, new ComputeWindow(now, grant, 0));
            long allowed = Math.max(0, grant - open.grantAtStart());
            if (used <= allowed + allowed * COMPUTE_TOLERANCE_PERCENT / 100 + window / 20) {
                continue;
            }
            Key key = new Key(AuditFinding.Reason.COMPUTE_OVER_QUOTA, gpu.uuid(), 0, allocation.id());
            if (!confirmed(key, 1, seen)) {
                continue;
            }
            List<Integer> members = attributed.stream()
                    .filter(a -> a.owner() != null && a.owner().id().equals(allocation.id()))
                    .map(a -> a.process().hostPid())
                    .toList();
            boolean killed = killAll(members);
            findings.add(report(
                    key,
                    allocation,
                    0,
                    -1,
                    0,
                    killed,
                    "NVML counts " + used / 1_000_000
                            + " ms of GPU time in the last " + window / 1_000_000 + " ms, the grant allowed "
                            + allowed / 1_000_000 + " ms (quota " + device.get().computeQuotaMilli() + "/1000)"));
        }
    }

    /** Whether {@code key} has now been seen on {@code passes} passes in a row and not yet reported. */
    @GuardedBy("this")
    private boolean confirmed(Key key, int passes, Set<Key> seen) {
        seen.add(key);
        if ((passes > 1 && !seenLastPass.contains(key)) || reported.contains(key)) {
            return false;
        }
        reported.add(key);
        return true;
    }

    private boolean killAll(List<Integer> pids) {
        boolean killed = false;
        if (kill) {
            for (int pid : pids) {
                killed |= killer.kill(pid);
            }
        }
        return killed;
    }

    private AuditFinding report(
            Key key, Allocation allocation, int pid, long usedBytes, long limit, boolean killed, String detail) {
        var claim = allocation == null ? null : allocation.claim();
        String namespace = allocation == null ? "" : allocation.podNamespace();
        String pod = allocation == null ? "" : allocation.podName();
        AuditFinding finding = new AuditFinding(
                key.reason(),
                key.gpuUuid(),
                pid,
                pid > 0 ? command(pid) : "",
                usedBytes,
                limit,
                namespace,
                pod,
                claim == null ? "" : claim.podUid(),
                allocation == null ? "" : allocation.id(),
                killed,
                detail);
        log.warn(
                "event=audit_violation reason={} gpu={} pid={} pod={}/{} allocation={} killed={} detail=\"{}\"",
                finding.reason().name().toLowerCase(Locale.ROOT),
                finding.gpuUuid(),
                finding.hostPid(),
                namespace,
                pod,
                finding.allocationId(),
                killed,
                finding.describe().replace('"', '\''));
        return finding;
    }

    /**
     * The allocation's slots and control snapshot, through the audit's own read-only mapping, kept from pass to
     * pass while the usage file is the same file (a directory made anew for the same allocation id is a new one).
     * The usage file is the container's to write, truncate included: its size is checked before every read (a read
     * of a mapping past the end of its file is a fault, {@link InternalError}, not an exception), and a file that
     * cannot be read still gives its identity, so the container's processes are still its own.
     */
    @GuardedBy("this")
    private Reading read(Allocation allocation) {
        java.nio.file.Path directory = ledger.directory(allocation);
        java.nio.file.attribute.BasicFileAttributes usage;
        try {
            usage = java.nio.file.Files.readAttributes(
                    directory.resolve(AllocationFiles.USAGE), java.nio.file.attribute.BasicFileAttributes.class);
        } catch (IOException | RuntimeException e) {
            log.debug("event=audit_usage_unreadable allocation={} reason=\"{}\"", allocation.id(), e.toString());
            unmap(allocation.id());
            return null;
        }
        String identity = "usage:" + usage.fileKey();
        Mapped mapped = this.mapped.get(allocation.id());
        try {
            if (usage.size() < UsageRegion.FILE_SIZE) {
                throw new RegionFormatException(
                        directory.resolve(AllocationFiles.USAGE),
                        RegionFormatException.Problem.TRUNCATED,
                        "usage file is " + usage.size() + " bytes, expected " + UsageRegion.FILE_SIZE);
            }
            if (mapped == null || !mapped.fileKey().equals(usage.fileKey())) {
                unmap(allocation.id());
                mapped = new Mapped(AllocationFiles.openReadOnly(directory), usage.fileKey());
                this.mapped.put(allocation.id(), mapped);
            }
            return new Reading(
                    mapped.files().usage().read().slots(),
                    mapped.files().control().read(),
                    identity);
        } catch (IOException | RuntimeException | InternalError e) {
            log.debug("event=audit_usage_unreadable allocation={} reason=\"{}\"", allocation.id(), e.toString());
            unmap(allocation.id());
            return new Reading(List.of(), null, identity);
        }
    }

    @GuardedBy("this")
    private void unmap(String allocationId) {
        Mapped stale = mapped.remove(allocationId);
        if (stale != null) {
            stale.files().close();
        }
    }

    /** Unmaps the files of allocations the ledger no longer holds. */
    @GuardedBy("this")
    private void unmapReleased(Set<String> held) {
        mapped.entrySet().removeIf(entry -> {
            if (held.contains(entry.getKey())) {
                return false;
            }
            entry.getValue().files().close();
            return true;
        });
    }

    /** Closes the audit's mappings (the agent's stop). */
    @Override
    public synchronized void close() {
        unmapReleased(Set.of());
    }

    /** What the container's usage file claims it holds on {@code uuid}, in words (it is a claim, not a figure). */
    private String usageTotal(Allocation allocation, String uuid) {
        try (AllocationFiles files = AllocationFiles.openReadOnly(ledger.directory(allocation))) {
            List<DeviceQuota> devices = ledger.spec(allocation).devices();
            for (int i = 0; i < devices.size(); i++) {
                if (devices.get(i).uuid().equals(uuid)) {
                    return files.usage().read().devices().get(i).bytesReserved() + " B";
                }
            }
        } catch (IOException | RuntimeException | InternalError e) {
            return "nothing readable (" + e.getMessage() + ")";
        }
        return "nothing for this GPU";
    }

    private Optional<AllocationSpec> spec(Allocation allocation) {
        if (allocation.gpuUuids().stream().anyMatch(u -> ledger.gpu(u) == null)) {
            return Optional.empty();
        }
        return Optional.of(ledger.spec(allocation));
    }

    /** The quota the agent set (its ledger, not the control file a container could have a view of). */
    private Optional<Long> limitOn(Allocation allocation, String uuid) {
        return spec(allocation)
                .flatMap(spec -> spec.devices().stream()
                        .filter(q -> q.uuid().equals(uuid))
                        .filter(q -> !q.memoryUnlimited())
                        .map(DeviceQuota::memoryLimitBytes)
                        .findFirst());
    }

    private static String command(int pid) {
        return ProcessHandle.of(pid)
                .flatMap(h -> h.info().commandLine().or(() -> h.info().command()))
                .orElse("");
    }
}
