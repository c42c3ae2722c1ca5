package io.omai.agent.quota;

import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.agent.quota.shm.UsageRegion;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
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
 * <p>Not thread-safe: one reaper per agent, driven by {@link #start} or directly by tests through {@link #reapOnce}.
 */
public final class DeadProcessReaper implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DeadProcessReaper.class);

    /** The default scan period: dead processes' memory is back within about this long. */
    public static final Duration DEFAULT_PERIOD = Duration.ofMillis(500);
    /** How long a half-claimed slot (no start time yet) may stay so before it is reclaimed. */
    public static final Duration CLAIM_GRACE = Duration.ofSeconds(2);

    /** What one pass did. */
    public record Result(int slotsReclaimed, long bytesReclaimed, long leakedBytesReset) {
        public static final Result NONE = new Result(0, 0, 0);

        Result plus(Result o) {
            return new Result(slotsReclaimed + o.slotsReclaimed, bytesReclaimed + o.bytesReclaimed,
                    leakedBytesReset + o.leakedBytesReset);
        }
    }

    private final ProcessTable processes;
    private final Supplier<? extends Collection<AllocationFiles>> allocations;
    private final LongSupplier nanoClock;
    /** Half-claimed slots first seen at: key = usage path + slot + pid. */
    private final Map<String, Long> halfClaimedSince = new HashMap<>();
    private ScheduledExecutorService scheduler;

    /**
     * @param processes the node's processes ({@link LinuxProcessTable} in production)
     * @param allocations the allocations currently open (owned by the caller; asked on every pass)
     */
    public DeadProcessReaper(ProcessTable processes, Supplier<? extends Collection<AllocationFiles>> allocations) {
        this(processes, allocations, System::nanoTime);
    }

    DeadProcessReaper(ProcessTable processes, Supplier<? extends Collection<AllocationFiles>> allocations,
            LongSupplier nanoClock) {
        this.processes = Objects.requireNonNull(processes, "processes");
        this.allocations = Objects.requireNonNull(allocations, "allocations");
        this.nanoClock = Objects.requireNonNull(nanoClock, "nanoClock");
    }

    /** One pass over every open allocation. */
    public synchronized Result reapOnce() {
        Result total = Result.NONE;
        Lookup lookup = new Lookup();
        Set<String> seenHalfClaims = new HashSet<>();
        for (AllocationFiles files : allocations.get()) {
            try {
                total = total.plus(reap(files.usage(), lookup, seenHalfClaims));
            } catch (RuntimeException e) {
                // One broken allocation must not stop the others from being reaped.
                LOG.warn("reaping {} failed: {}", files.directory(), e.toString());
            }
        }
        halfClaimedSince.keySet().retainAll(seenHalfClaims);
        return total;
    }

    private Result reap(UsageRegion usage, Lookup lookup, Set<String> seenHalfClaims) {
        UsageSnapshot snapshot = usage.read(); // slots first, processes second: see the class comment
        int slots = 0;
        long bytes = 0;
        int occupied = 0;
        for (UsageSnapshot.Slot slot : snapshot.slots()) {
            occupied++;
            if (slot.state() == ShmLayout.SLOT_FREE || slot.state() == ShmLayout.SLOT_RECLAIM) {
                continue; // being claimed (pid just written) or being released by its own process
            }
            boolean dead;
            if (lookup.unreadable) {
                continue; // this pass cannot prove anyone dead
            } else if (slot.startTimeTicks() == 0) {
                // Claimed but identity not written yet: the shim writes it right after the claim, so a slot
                // that stays like this died between the two stores.
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
                } catch (ProcessUnreadableException e) {
                    lookup.unreadable = true;
                    LOG.warn("not reclaiming slots of {} in this pass: {}", usage.path(), e.getMessage());
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
                LOG.info("reclaimed usage slot {} of {}: process {} (pid namespace {}) is gone, {} bytes released",
                        slot.index(), usage.path(), slot.pid(), slot.pidNsInode(), released);
            }
        }
        long leaked = 0;
        if (occupied == 0) {
            leaked = usage.resetLeakedTotals();
            if (leaked > 0) {
                LOG.info("{}: no process left, cleared {} leaked reserved bytes", usage.path(), leaked);
            }
        }
        return new Result(slots, bytes, leaked);
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

        private ProcStat matching(Optional<ProcStat> p, UsageSnapshot.Slot slot) {
            return p.filter(proc -> proc.isLive(slot.pidNsInode(), slot.pid(), slot.startTimeTicks())).orElse(null);
        }
    }

    /** Runs {@link #reapOnce} every {@code period} on a daemon thread until {@link #close}. */
    public synchronized void start(Duration period) {
        if (scheduler != null) {
            throw new IllegalStateException("the dead-process reaper is already running");
        }
        scheduler = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "omai-dead-process-reaper");
            t.setDaemon(true);
            return t;
        });
        scheduler.scheduleWithFixedDelay(() -> {
            try {
                reapOnce();
            } catch (RuntimeException e) {
                LOG.warn("dead-process reaper pass failed: {}", e.toString());
            }
        }, 0, period.toNanos(), TimeUnit.NANOSECONDS);
    }

    @Override
    public synchronized void close() {
        if (scheduler != null) {
            scheduler.shutdownNow();
            try {
                scheduler.awaitTermination(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            scheduler = null;
        }
    }
}
