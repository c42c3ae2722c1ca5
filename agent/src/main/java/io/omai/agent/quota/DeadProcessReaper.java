package io.omai.agent.quota;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.lifecycle.IsolatedFailures;
import io.omai.agent.lifecycle.LoopSlot;
import io.omai.agent.lifecycle.SupervisedLoop;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.RegionFormatException;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.agent.quota.shm.UsageRegion;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BiConsumer;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Releases the GPU memory of processes that died without giving it back (SIGKILL, OOM killer, a crash).
 *
 * <p>Every process running under the shim holds one slot of its container's usage file, keyed by (pid namespace,
 * pid, start time). The reaper reads the slots of every open allocation, then the process table, and calls
 * {@link UsageRegion#reclaim} for each slot whose process no longer exists (or is a zombie): its bytes go back to
 * the container's totals. Slots are read BEFORE the processes, so a process that claims a slot during a scan is
 * already in the process table when it is looked up. When no slot of an allocation is left,
 * {@link UsageRegion#resetLeakedTotals} clears what a crash inside the shim's reserve/commit window over-counted.
 *
 * <p>For every live slot whose host pid is not known yet the reaper records the pid it found the process under
 * ({@link UsageRegion#setHostPid}): NVML reports host pids, and the compute controller matches them to slots.
 *
 * <p>A slot caught half-claimed (pid written, identity not yet) is given a grace period before it is treated as
 * the claim of a process that died at that instruction.
 *
 * <p>The usage file is the container's to write, so its contents are claims: each pass first checks the file's
 * size and header ({@link UsageRegion#verify}) and that no device's total is below what its slots hold (confirmed
 * by re-reading, since totals and slots are read one by one); a file that fails is a {@link UsageProblem} told
 * to the listener ({@link #onProblem}) once while it lasts, and is not reaped. A file whose slots are all taken is
 * reported too. A reclaim returns at most what the total holds beyond the other slots
 * ({@link UsageRegion#reclaim}). One allocation's failure (a fault in a truncated mapping included) is isolated:
 * the others are reaped in the same pass.
 *
 * <p>Most allocations are quiet most of the time, and reading every slot of all of them each pass was most of
 * the agent's idle CPU. So after a full pass that found a file in order (no problem, no half-claim, every live
 * slot's process read), the next passes only check its header, its device totals and whether each live process
 * that pass found still runs (one {@code /proc/<pid>} read each): a process that died is still reclaimed on the
 * next pass. The full read comes back as soon as a total changes, a known process is gone or cannot be read, and
 * every {@link #FULL_READ_EVERY} passes regardless: the totals are the container's to write, so a container that
 * forges them to look unchanged only delays, by at most that many passes, the reclaim of slots its own processes
 * claimed since (a slot's bytes are in the totals, so a slot that holds memory changes them when it claims it).
 *
 * <p>Not thread-safe: one reaper per agent, driven by {@link #start} or directly by tests through {@link #reapOnce}.
 */
public final class DeadProcessReaper implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DeadProcessReaper.class);

    /** The default scan period: dead processes' memory is back within about this long. */
    public static final Duration DEFAULT_PERIOD = Duration.ofMillis(500);
    /** How long a half-claimed slot (no start time yet) may stay so before it is reclaimed. */
    public static final Duration CLAIM_GRACE = Duration.ofSeconds(2);

    /** What one pass did. */
    public record Result(int slotsReclaimed, long bytesReclaimed, long leakedBytesReset) {
        public static final Result NONE = new Result(0, 0, 0);

        Result plus(Result o) {
            return new Result(
                    slotsReclaimed + o.slotsReclaimed,
                    bytesReclaimed + o.bytesReclaimed,
                    leakedBytesReset + o.leakedBytesReset);
        }
    }

    private final ProcessTable processes;
    private final Supplier<? extends Collection<AllocationFiles>> allocations;
    private final LongSupplier nanoClock;
    /** Half-claimed slots first seen at: key = usage path + slot + pid. */
    @GuardedBy("this")
    private final Map<String, Long> halfClaimedSince = new HashMap<>();
    /** Problems reported and still present, per usage file: each is told once while it lasts. */
    @GuardedBy("this")
    private final Map<String, Set<String>> reported = new HashMap<>();

    /**
     * A quiet file is still read in full at least every this many passes (5 s at the default period): what a
     * container that forges unchanged totals can delay the reclaim of its own new slots by.
     */
    static final int FULL_READ_EVERY = 10;

    /** What the last full pass over a quiet file found (usage path → it); absent while the file is not quiet. */
    @GuardedBy("this")
    private final Map<String, QuietFile> quietFiles = new HashMap<>();

    private final java.util.concurrent.atomic.AtomicLong fullReads = new java.util.concurrent.atomic.AtomicLong();

    /** A live slot's identity, as the full pass that found its process alive saw it. */
    private record LiveSlot(int index, int pid, long pidNsInode, long startTimeTicks, int hostPid) {}

    /**
     * A quiet file's device totals (read before its slots) and live slots at its last full pass, and how many
     * passes since then took the quick check.
     */
    private record QuietFile(List<UsageSnapshot.DeviceTotals> totals, List<LiveSlot> liveSlots, int quickPasses) {
        QuietFile quieter() {
            return new QuietFile(totals, liveSlots, quickPasses + 1);
        }
    }

    private final IsolatedFailures failures = new IsolatedFailures("dead-process-reaper");
    private volatile BiConsumer<AllocationFiles, UsageProblem> problemListener = (files, problem) -> {};
    private final LoopSlot loop = new LoopSlot();
    private final java.util.concurrent.atomic.AtomicLong slotsReclaimed = new java.util.concurrent.atomic.AtomicLong();
    private final java.util.concurrent.atomic.AtomicLong bytesReclaimed = new java.util.concurrent.atomic.AtomicLong();

    /**
     * @param processes the node's processes ({@link LinuxProcessTable} in production)
     * @param allocations the allocations currently open (owned by the caller; asked on every pass)
     */
    public DeadProcessReaper(ProcessTable processes, Supplier<? extends Collection<AllocationFiles>> allocations) {
        this(processes, allocations, System::nanoTime);
    }

    DeadProcessReaper(
            ProcessTable processes,
            Supplier<? extends Collection<AllocationFiles>> allocations,
            LongSupplier nanoClock) {
        this.processes = Objects.requireNonNull(processes, "processes");
        this.allocations = Objects.requireNonNull(allocations, "allocations");
        this.nanoClock = Objects.requireNonNull(nanoClock, "nanoClock");
    }

    /** Told of every new problem of a usage file (on the reaper's thread); replaces the previous listener. */
    public void onProblem(BiConsumer<AllocationFiles, UsageProblem> listener) {
        this.problemListener = Objects.requireNonNull(listener, "listener");
    }

    /** Usage-file slots of dead processes reclaimed since start (what the agent did, not what the files say). */
    public long slotsReclaimedTotal() {
        return slotsReclaimed.get();
    }

    /** Device memory returned with those slots since start, bytes. */
    public long bytesReclaimedTotal() {
        return bytesReclaimed.get();
    }

    /** Full reads of a usage file's slots since start (package-private: what the quick check saves, for tests). */
    long fullReadsTotal() {
        return fullReads.get();
    }

    /** One pass over every open allocation. */
    // GuardedBy: failures.run runs each allocation's pass at once, on this thread, inside this monitor
    @SuppressWarnings("GuardedBy")
    public synchronized Result reapOnce() {
        Result[] total = {Result.NONE};
        Lookup lookup = new Lookup();
        Set<String> seenHalfClaims = new HashSet<>();
        Set<String> subjects = new HashSet<>();
        for (AllocationFiles files : allocations.get()) {
            String subject = files.usage().path().toString();
            subjects.add(subject);
            // One broken allocation must not stop the others from being reaped.
            failures.run(subject, () -> {
                QuietFile quiet = quietFiles.remove(subject);
                if (quiet != null && stillQuiet(files.usage(), quiet, lookup)) {
                    quietFiles.put(subject, quiet.quieter());
                    return;
                }
                fullReads.incrementAndGet();
                if (usable(files)) {
                    List<UsageSnapshot.DeviceTotals> totalsBefore = totals(files.usage()); // before reap's slot read
                    FullPass found = new FullPass();
                    boolean unreadableBefore = lookup.unreadable;
                    Result reaped = reap(files.usage(), lookup, seenHalfClaims, found);
                    total[0] = total[0].plus(reaped);
                    // A pass that reclaimed changed the totals it read first: they could come back to those
                    // values with a new slot behind them, so the next pass reads in full.
                    if (reaped.equals(Result.NONE)
                            && !found.unsettled
                            && !lookup.unreadable
                            && !unreadableBefore
                            && reported.getOrDefault(subject, Set.of()).isEmpty()) {
                        quietFiles.put(subject, new QuietFile(totalsBefore, List.copyOf(found.liveSlots), 0));
                    }
                }
            });
        }
        failures.retain(subjects);
        quietFiles.keySet().retainAll(subjects);
        reported.keySet().retainAll(subjects);
        slotsReclaimed.addAndGet(total[0].slotsReclaimed());
        bytesReclaimed.addAndGet(total[0].bytesReclaimed());
        halfClaimedSince.keySet().retainAll(seenHalfClaims);
        return total[0];
    }

    /**
     * Checks the file before its contents are acted on: size and header, every slot taken, totals below the
     * slots' bytes. Problems are reported once while they last.
     *
     * @return false when the file must not be reaped this pass
     */
    @GuardedBy("this")
    private boolean usable(AllocationFiles files) {
        UsageRegion usage = files.usage();
        List<UsageProblem> problems = new ArrayList<>();
        try {
            usage.verify();
            problems.addAll(contradictions(usage));
        } catch (RegionFormatException e) {
            problems.add(new UsageProblem(UsageProblem.Kind.TAMPERED, -1, e.getMessage()));
        }
        Set<String> before = reported.computeIfAbsent(usage.path().toString(), p -> new HashSet<>());
        Set<String> now = new HashSet<>();
        for (UsageProblem problem : problems) {
            now.add(problem.key());
            if (!before.contains(problem.key())) {
                problemListener.accept(files, problem);
            }
        }
        before.retainAll(now);
        before.addAll(now);
        return problems.stream().noneMatch(p -> p.kind() == UsageProblem.Kind.TAMPERED);
    }

    /**
     * The quick check of a file that was quiet at its last full pass: header in order, every device total as
     * then, every process then alive still alive with the same identity, and the full read not due.
     */
    @GuardedBy("this")
    private boolean stillQuiet(UsageRegion usage, QuietFile quiet, Lookup lookup) {
        if (quiet.quickPasses() + 1 >= FULL_READ_EVERY) {
            return false;
        }
        try {
            usage.verify();
        } catch (RegionFormatException e) {
            return false; // the full pass reports it
        }
        if (!totals(usage).equals(quiet.totals())) {
            return false;
        }
        for (LiveSlot slot : quiet.liveSlots()) {
            try {
                if (!lookup.stillLive(slot)) {
                    return false;
                }
            } catch (ProcessUnreadableException e) {
                return false; // the full pass decides what an unreadable process means
            }
        }
        return true;
    }

    private static List<UsageSnapshot.DeviceTotals> totals(UsageRegion usage) {
        List<UsageSnapshot.DeviceTotals> totals = new ArrayList<>(usage.deviceCount());
        for (int d = 0; d < usage.deviceCount(); d++) {
            totals.add(usage.deviceTotals(d));
        }
        return totals;
    }

    /** How many times a total below its slots is re-read before it counts, and how far apart. */
    static final int CONFIRMING_READS = 3;

    static final long CONFIRM_PAUSE_NANOS = 5_000_000L;

    /**
     * Every slot taken; and devices whose total is below the sum of its slots' bytes in every one of
     * {@link #CONFIRMING_READS} reads. The shim reserves in the total before it adds to a slot and frees the slot
     * before the total, so an honest file never has a total below its slots; the re-reads rule out a read that
     * straddled one of those two steps.
     */
    private static List<UsageProblem> contradictions(UsageRegion usage) {
        List<UsageProblem> problems = new ArrayList<>();
        UsageSnapshot snapshot = usage.read();
        if (snapshot.slots().size() >= ShmLayout.MAX_SLOTS) {
            problems.add(new UsageProblem(
                    UsageProblem.Kind.SLOTS_EXHAUSTED,
                    -1,
                    "all " + ShmLayout.MAX_SLOTS + " process slots are taken (pids " + pidsOf(snapshot)
                            + "); the shim refuses new processes"));
        }
        for (int read = 0; read < CONFIRMING_READS; read++) {
            List<UsageProblem> below = totalsBelowSlots(snapshot);
            if (below.isEmpty()) {
                return problems;
            }
            if (read == CONFIRMING_READS - 1) {
                problems.addAll(below);
                return problems;
            }
            LockSupport.parkNanos(CONFIRM_PAUSE_NANOS);
            snapshot = usage.read();
        }
        return problems;
    }

    private static List<UsageProblem> totalsBelowSlots(UsageSnapshot snapshot) {
        List<UsageProblem> problems = new ArrayList<>();
        for (int d = 0; d < snapshot.deviceCount(); d++) {
            long slots = 0;
            long largest = 0;
            int largestSlot = -1;
            for (UsageSnapshot.Slot slot : snapshot.slots()) {
                long bytes = slot.devices().get(d).bytesInUse();
                long sum = slots + bytes;
                slots = Long.compareUnsigned(sum, slots) < 0 ? -1L : sum;
                if (Long.compareUnsigned(bytes, largest) > 0) {
                    largest = bytes;
                    largestSlot = slot.index();
                }
            }
            long total = snapshot.devices().get(d).bytesReserved();
            if (Long.compareUnsigned(total, slots) < 0) {
                problems.add(new UsageProblem(
                        UsageProblem.Kind.TAMPERED,
                        d,
                        "device " + d + " total bytes_reserved"
                                + " is " + Long.toUnsignedString(total) + " but its slots hold "
                                + Long.toUnsignedString(slots)
                                + " (largest: slot " + largestSlot + " with " + Long.toUnsignedString(largest)
                                + "); the shim never lets the total fall below its slots"));
            }
        }
        return problems;
    }

    private static String pidsOf(UsageSnapshot snapshot) {
        return snapshot.slots().stream()
                        .map(s -> Integer.toString(s.pid()))
                        .distinct()
                        .limit(8)
                        .reduce((a, b) -> a + "," + b)
                        .orElse("")
                + (snapshot.slots().size() > 8 ? ",..." : "");
    }

    /**
     * Host pids of the processes that hold a slot of {@code usage} and are alive with the identity the slot
     * records (pid namespace, pid, start time); empty when the file cannot be read.
     */
    public synchronized List<Integer> liveHostPids(UsageRegion usage) {
        List<Integer> pids = new ArrayList<>();
        Lookup lookup = new Lookup();
        try {
            for (UsageSnapshot.Slot slot : usage.read().slots()) {
                if (slot.startTimeTicks() == 0) {
                    continue;
                }
                ProcStat owner = lookup.liveOwner(slot);
                if (owner != null) {
                    pids.add(owner.pid());
                }
            }
        } catch (RuntimeException e) { // a truncated file, an unreadable process
            log.warn("event=live_pids_unreadable usage={} error=\"{}\"", usage.path(), e.toString());
        }
        return pids;
    }

    @GuardedBy("this")
    private Result reap(UsageRegion usage, Lookup lookup, Set<String> seenHalfClaims, FullPass found) {
        UsageSnapshot snapshot = usage.read(); // slots first, processes second: see the class comment
        int slots = 0;
        long bytes = 0;
        int occupied = 0;
        for (UsageSnapshot.Slot slot : snapshot.slots()) {
            occupied++;
            if (slot.state() == ShmLayout.SLOT_FREE || slot.state() == ShmLayout.SLOT_RECLAIM) {
                found.unsettled = true;
                continue; // being claimed (pid just written) or being released by its own process
            }
            boolean dead;
            if (lookup.unreadable) {
                continue; // this pass cannot prove anyone dead
            } else if (slot.startTimeTicks() == 0) {
                // Claimed but identity not written yet: the shim writes it right after the claim, so a slot
                // that stays like this died between the two stores.
                found.unsettled = true;
                String key = usage.path() + "#" + slot.index() + "#" + slot.pid();
                seenHalfClaims.add(key);
                long since = halfClaimedSince.computeIfAbsent(key, k -> nanoClock.getAsLong());
                dead = nanoClock.getAsLong() - since >= CLAIM_GRACE.toNanos();
            } else {
                try {
                    ProcStat owner = lookup.liveOwner(slot);
                    dead = owner == null;
                    if (!dead && slot.hostPid() == 0 && slot.state() == ShmLayout.SLOT_ACTIVE) {
                        // The compute controller matches NVML's host pids to slots through this.
                        usage.setHostPid(slot.index(), slot.pid(), owner.pid());
                    }
                    if (!dead) {
                        found.liveSlots.add(new LiveSlot(
                                slot.index(), slot.pid(), slot.pidNsInode(), slot.startTimeTicks(), owner.pid()));
                    }
                } catch (ProcessUnreadableException e) {
                    lookup.unreadable = true;
                    log.warn("not reclaiming slots of {} in this pass: {}", usage.path(), e.getMessage());
                    continue;
                }
            }
            if (!dead) {
                continue;
            }
            long released = usage.reclaim(slot.index(), slot.pid(), slot.startTimeTicks());
            if (released >= 0) {
                slots++;
                bytes += released;
                occupied--;
                log.info(
                        "reclaimed usage slot {} of {}: process {} (pid namespace {}) is gone, {} bytes released",
                        slot.index(),
                        usage.path(),
                        slot.pid(),
                        slot.pidNsInode(),
                        released);
            }
        }
        long leaked = 0;
        if (occupied == 0) {
            leaked = usage.resetLeakedTotals();
            if (leaked > 0) {
                log.info("{}: no process left, cleared {} leaked reserved bytes", usage.path(), leaked);
            }
        }
        return new Result(slots, bytes, leaked);
    }

    /** What a full pass over one file found that decides whether the next passes may take the quick check. */
    private static final class FullPass {
        final List<LiveSlot> liveSlots = new ArrayList<>();
        /** A slot was half-claimed, being claimed or being released: the next pass reads the file in full. */
        boolean unsettled;
    }

    /** Process lookups for one pass: direct by pid where the namespace allows, else one full listing. */
    private final class Lookup {
        private final long ownNs = processes.ownPidNamespaceInode();
        private List<ProcStat> all;
        /** Set once some process could not be read: nothing is reclaimed for the rest of the pass. */
        boolean unreadable;

        /** The live process that owns the slot (its pid is the agent's view, the host pid), or null if none. */
        ProcStat liveOwner(UsageSnapshot.Slot slot) {
            if (slot.hostPid() != 0) {
                ProcStat p = matching(processes.read(slot.hostPid()), slot);
                if (p != null) {
                    return p;
                }
            }
            if (slot.pidNsInode() != 0 && slot.pidNsInode() == ownNs) {
                return matching(processes.read(slot.pid()), slot);
            }
            if (all == null) {
                all = processes.all();
            }
            for (ProcStat p : all) {
                if (p.isLive(slot.pidNsInode(), slot.pid(), slot.startTimeTicks())) {
                    return p;
                }
            }
            return null;
        }

        /** Whether the process a full pass found behind a slot still runs: one read of its host pid. */
        boolean stillLive(LiveSlot slot) {
            return processes
                    .read(slot.hostPid())
                    .filter(p -> p.isLive(slot.pidNsInode(), slot.pid(), slot.startTimeTicks()))
                    .isPresent();
        }

        private ProcStat matching(Optional<ProcStat> p, UsageSnapshot.Slot slot) {
            return p.filter(proc -> proc.isLive(slot.pidNsInode(), slot.pid(), slot.startTimeTicks()))
                    .orElse(null);
        }
    }

    /**
     * Runs {@link #reapOnce} every {@code period} on a supervised loop until {@link #close}; the loop misses its
     * deadline (for {@code /healthz}) after 20 periods, at least 10 s, without a completed pass.
     *
     * @return the loop, for {@code /healthz}
     */
    public synchronized SupervisedLoop start(Duration period) {
        if (loop.running()) {
            throw new IllegalStateException("the dead-process reaper is already running");
        }
        Duration deadline = period.multipliedBy(20).compareTo(Duration.ofSeconds(10)) > 0
                ? period.multipliedBy(20)
                : Duration.ofSeconds(10);
        return loop.startIfIdle(() -> SupervisedLoop.start("dead-process-reaper", period, deadline, this::reapOnce));
    }

    /** Allocations whose last pass failed, with the error (usage path → error). */
    public Map<String, String> failingAllocations() {
        return failures.failing();
    }

    @Override
    public void close() {
        loop.close();
    }
}
