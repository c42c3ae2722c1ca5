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
 * mapped while the ledger holds it and unmaps them once it is released.
 */
final class QuotaEnforcement implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(QuotaEnforcement.class);

    private final AllocationLedger ledger;
    private final Map<String, AllocationFiles> open = new HashMap<>();
    private final Set<String> unreadable = new HashSet<>();
    private final ComputeControlLoop computeLoop;
    private final DeadProcessReaper reaper;

    QuotaEnforcement(AllocationLedger ledger, NvmlLibrary nvml, long periodNanos) {
        this.ledger = ledger;
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

    /** The files of every allocation the ledger holds now; released ones are unmapped. */
    private synchronized Map<Allocation, AllocationFiles> current() {
        Map<Allocation, AllocationFiles> current = new LinkedHashMap<>();
        Set<String> held = new HashSet<>();
        for (Allocation allocation : ledger.allocations()) {
            held.add(allocation.id());
            AllocationFiles files = open.get(allocation.id());
            if (files == null) {
                try {
                    files = AllocationFiles.open(ledger.directory(allocation));
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
            entry.getValue().close();
            return true;
        });
        unreadable.retainAll(held);
        return current;
    }

    private List<AllocationFiles> liveFiles() {
        return new ArrayList<>(current().values());
    }

    private Map<String, List<ComputeTarget>> targetsByGpu() {
        Map<String, List<ComputeTarget>> byGpu = new LinkedHashMap<>();
        current().forEach((allocation, files) -> {
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
    }
}
