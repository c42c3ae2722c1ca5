package io.omai.simulator.simulate;

import io.omai.agent.config.ByteQuantity;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.RegionFormatException;
import io.omai.agent.quota.shm.UsageSnapshot;
import io.omai.agent.gpu.GpuDevice;
import io.omai.ibvf.inventory.InventorySnapshot;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Renders the simulated node as a table: GPUs with their shares and tenants, each pod's quota against what it
 * achieved, memory and throttling, and the InfiniBand VFs. Achieved shares come from the simulated NVML's
 * per-process utilisation, the same source the agent's controller reads.
 */
final class LiveTable {
    private final SimulatedNode node;
    private final Map<String, long[]> previousThrottle = new HashMap<>();

    LiveTable(SimulatedNode node) {
        this.node = node;
    }

    String render(long elapsedMillis, Map<Long, Integer> smUtilByPid, long refreshMillis) {
        StringBuilder out = new StringBuilder();
        List<SimulatedNode.RunningPod> pods = node.pods();
        out.append(String.format(Locale.ROOT, "OMAI simulated node  t=%5.1fs  metrics http://127.0.0.1:%d/metrics%n",
                elapsedMillis / 1000.0, node.metricsPort()));
        out.append(String.format(Locale.ROOT, "%-4s %-42s %-9s %-12s %-20s%n", "GPU", "UUID", "MILLI", "MEMORY",
                "TENANTS"));
        List<Allocation> allocations = node.agent().ledger().allocations();
        for (GpuDevice gpu : node.agent().ledger().gpus()) {
            int milli = 0;
            long memory = 0;
            Set<String> tenants = new LinkedHashSet<>();
            for (Allocation a : allocations) {
                Integer share = a.milliPerGpu().get(gpu.uuid());
                if (share == null) {
                    continue;
                }
                milli += share;
                // The memory quota the ledger wrote into the control file (a reservation may set it), not a
                // proportional guess; an unlimited quota counts as the share of the card.
                for (DeviceQuota quota : node.agent().ledger().spec(a).devices()) {
                    if (quota.uuid().equals(gpu.uuid())) {
                        memory += quota.memoryUnlimited() ? gpu.memoryBytes() * share / 1000
                                : quota.memoryLimitBytes();
                    }
                }
                pods.stream().filter(p -> p.allocationId().equals(a.id())).findFirst()
                        .ifPresent(p -> tenants.add(p.spec().tenant()));
            }
            out.append(String.format(Locale.ROOT, "%-4d %-42s %4d/1000 %-12s %-20s%n", gpu.index(), gpu.uuid(), milli,
                    ByteQuantity.format(memory), tenants.isEmpty() ? "-" : String.join(",", tenants)));
        }
        out.append(String.format(Locale.ROOT, "%n%-22s %-7s %-4s %6s %9s %-22s %9s %7s%n", "POD", "TENANT", "GPU",
                "QUOTA", "ACHIEVED", "MEMORY used/limit", "THROTTLED", "DENIED"));
        for (SimulatedNode.RunningPod pod : pods) {
            Optional<AllocationFiles> files = node.files(pod.allocationId());
            if (files.isEmpty()) {
                continue;
            }
            try {
                ControlSnapshot control = files.get().control().read();
                UsageSnapshot usage = files.get().usage().read();
                ControlSnapshot.Device device = control.devices().getFirst();
                UsageSnapshot.DeviceTotals totals = usage.devices().getFirst();
                Integer util = smUtilByPid.get(pod.process().pid());
                String achieved = !pod.process().isAlive() ? "exited" : util == null ? "-" : util + "%";
                long[] last = previousThrottle.getOrDefault(pod.allocationId(), new long[] {totals.throttledNs()});
                double throttledShare = (totals.throttledNs() - last[0]) / 1e6 / Math.max(1, refreshMillis);
                previousThrottle.put(pod.allocationId(), new long[] {totals.throttledNs()});
                out.append(String.format(Locale.ROOT, "%-22s %-7s %-4d %5.1f%% %9s %-22s %8.0f%% %7d%n",
                        pod.spec().name(), pod.spec().tenant(), device.hostIndex(), device.computeQuotaMilli() / 10.0,
                        achieved, ByteQuantity.format(totals.bytesReserved()) + "/"
                                + (device.memoryUnlimited() ? "unlimited" : ByteQuantity.format(device.memoryLimitBytes())),
                        throttledShare * 100, totals.deniedAllocs()));
            } catch (RegionFormatException e) {
                out.append(pod.spec().name()).append(": ").append(e.getMessage()).append('\n');
            }
        }
        InventorySnapshot vfs = node.vfMonitor().poll();
        Set<io.omai.ibvf.model.PciAddress> handedOut = node.agent().vfPlugin()
                .map(plugin -> plugin.allocatedVfs()).orElse(Set.of());
        Map<String, String> holders = new HashMap<>();
        pods.forEach(pod -> pod.vfs().forEach(vf -> holders.put(vf, pod.spec().name())));
        out.append(String.format(Locale.ROOT, "%n%-14s %-14s %-10s %-22s %s%n", "VF", "PF", "RDMA", "ALLOCATED",
                "HEALTH"));
        vfs.pfs().forEach(pf -> pf.vfs().forEach(status -> out.append(String.format(Locale.ROOT,
                "%-14s %-14s %-10s %-22s %s%n", status.vf().address(), pf.pf().address(),
                status.vf().rdmaDevice().orElse("-"), !handedOut.contains(status.vf().address()) ? "-"
                        : holders.getOrDefault(status.vf().address().value(), "yes"), status.health()))));
        return out.toString();
    }
}
