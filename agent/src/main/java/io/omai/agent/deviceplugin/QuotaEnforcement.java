package io.omai.agent.deviceplugin;

import io.omai.agent.gpu.nvml.NvmlLibrary;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.quota.DeadProcessReaper;
import io.omai.agent.quota.LinuxProcessTable;
import io.omai.agent.quota.compute.ComputeControlLoop;
import io.omai.agent.quota.compute.ComputeTarget;
import io.omai.agent.quota.compute.NvmlProcessGpuTime;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.DeviceQuota;
import java.io.IOException;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
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
 */
final class QuotaEnforcement implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(QuotaEnforcement.class);

    /** The threads that use the mappings, each through its own pass. */
    enum User { COMPUTE, REAPER }

    /** Files of a released allocation, kept until every user's pass that may hold them has ended. */
    private record Retired(String allocationId, AllocationFiles files, Map<User, Long> passesAtRetirement) {}

    private final AllocationLedger ledger;
    private final Map<String, AllocationFiles> open = new HashMap<>();
    private final List<Retired> retired = new ArrayList<>();
    private final Map<User, Long> passes = new EnumMap<>(User.class);
    private final Set<String> unreadable = new HashSet<>();
    private final ComputeControlLoop computeLoop;
    private final DeadProcessReaper reaper;

    QuotaEnforcement(AllocationLedger ledger, NvmlLibrary nvml, long periodNanos) {
        this.ledger = ledger;
        for (User user : User.values()) {
            passes.put(user, 0L);
        }
        this.computeLoop = new ComputeControlLoop(periodNanos, this::targetsByGpu, new NvmlProcessGpuTime(nvml));
        this.reaper = new DeadProcessReaper(new LinuxProcessTable(), this::liveFiles);
    }

    void start() {
        reaper.start(DeadProcessReaper.DEFAULT_PERIOD);
        computeLoop.start();
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
                        log.warn("event=allocation_files_unreadable allocation={} error=\"{}\"", allocation.id(),
                                e.getMessage());
                    }
                    continue;
                }
            }
            current.put(allocation, files);
        }
        open.entrySet().removeIf(entry -> {
            if (held.contains(entry.getKey())) {
                return false;
            }
            // the other users' passes still running may hold it; this user's pass now starting does not
            Map<User, Long> mayHold = new EnumMap<>(passes);
            mayHold.merge(user, -1L, Long::sum);
            retired.add(new Retired(entry.getKey(), entry.getValue(), mayHold));
            return true;
        });
        retired.removeIf(r -> {
            for (User u : User.values()) {
                if (passes.get(u) <= r.passesAtRetirement().get(u)) {
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

    /** Files mapped now, retired ones included (tests). */
    synchronized int mappedCount() {
        return open.size() + retired.size();
    }

    List<AllocationFiles> liveFiles() {
        return new ArrayList<>(current(User.REAPER).values());
    }

    Map<String, List<ComputeTarget>> targetsByGpu() {
        Map<String, List<ComputeTarget>> byGpu = new LinkedHashMap<>();
        current(User.COMPUTE).forEach((allocation, files) -> {
            // Device records are in the order the ledger wrote them into the control file.
            List<DeviceQuota> records = ledger.spec(allocation).devices();
            for (int i = 0; i < records.size(); i++) {
                byGpu.computeIfAbsent(records.get(i).uuid(), uuid -> new ArrayList<>())
                        .add(new ComputeTarget(allocation.id(), files, i));
            }
        });
        return byGpu;
    }

    @Override
    public synchronized void close() {
        computeLoop.close();
        reaper.close();
        open.values().forEach(AllocationFiles::close);
        open.clear();
        retired.forEach(r -> r.files().close());
        retired.clear();
    }
}
