package io.omai.simulator.simulate;

import io.omai.agent.config.ByteQuantity;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.DamagedRegionException;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.RegionFormatException;
import io.omai.agent.quota.shm.UsageSnapshot;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.model.PciAddress;
import io.omai.simulator.sim.SimNode;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.LongSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Renders the simulated node as a table. Everything about allocations is the agent's own view: GPUs, their health
 * as advertised to kubelet, the shares and memory quotas handed out, and each allocation's tenant as the agent
 * identified its pod. What a pod achieved is measured apart from the controller's input: the simulated driver's
 * busy counters (kernel time per process), over the last {@link #WINDOW}; throttling is what its shim recorded.
 */
final class LiveTable {
    /** Achieved shares and throttling are averaged over this long (or the refresh interval, if longer). */
    static final Duration WINDOW = Duration.ofSeconds(5);

    private static final Pattern PROC = Pattern.compile("(?m)^proc pid=(\\d+) .*?\\bbusy_us=(\\d+)");

    private final SimulatedNode node;
    private final LongSupplier nanoTime;
    private final Deque<Counters> history = new ArrayDeque<>();

    /** Cumulative counters at one moment: GPU busy time per process, throttled time per allocation. */
    private record Counters(long atNanos, Map<Long, Long> busyMicrosByPid, Map<String, Long> throttledNsByAllocation) {}

    LiveTable(SimulatedNode node, LongSupplier nanoTime) {
        this.node = node;
        this.nanoTime = nanoTime;
        history.add(sample());
    }

    String render(long elapsedMillis) {
        Counters now = sample();
        // keep one sample at or before the window's start as the baseline
        while (history.size() > 1) {
            Iterator<Counters> oldest = history.iterator();
            oldest.next();
            if (now.atNanos() - oldest.next().atNanos() < WINDOW.toNanos()) {
                break;
            }
            history.removeFirst();
        }
        Counters base = history.peekFirst();
        history.addLast(now);
        double seconds = (now.atNanos() - base.atNanos()) / 1e9;

        StringBuilder out = new StringBuilder();
        List<SimulatedNode.RunningPod> pods = node.pods();
        out.append(String.format(
                Locale.ROOT,
                "OMAI simulated node  t=%5.1fs  metrics http://127.0.0.1:%d/metrics " + "(also /healthz, /readyz)%n",
                elapsedMillis / 1000.0,
                node.metricsPort()));
        out.append(String.format(
                Locale.ROOT,
                "Kubernetes API (in-process, pods and node) %s; allocations in %s%n",
                node.kubernetesApi(),
                node.allocationsDirectory()));
        out.append(String.format(
                Locale.ROOT,
                "%n%-3s %-40s %-9s %-9s %-21s %s%n",
                "GPU",
                "UUID",
                "HEALTH",
                "MILLI",
                "MEMORY quotas/card",
                "TENANTS (agent's)"));
        List<Allocation> allocations = node.agent().ledger().allocations();
        Map<String, GpuHealth> health = node.agent().advertisedHealth();
        for (GpuDevice gpu : node.agent().ledger().gpus()) {
            int milli = 0;
            long quotas = 0;
            Set<String> tenants = new LinkedHashSet<>();
            for (Allocation a : allocations) {
                Integer share = a.milliPerGpu().get(gpu.uuid());
                if (share == null) {
                    continue;
                }
                milli += share;
                // The memory quotas the ledger wrote into the control files (a reservation may set them), not a
                // proportional guess; an unlimited quota counts as the share of the card.
                for (DeviceQuota quota : node.agent().ledger().spec(a).devices()) {
                    if (quota.uuid().equals(gpu.uuid())) {
                        quotas += quota.memoryUnlimited() ? gpu.memoryBytes() * share / 1000 : quota.memoryLimitBytes();
                    }
                }
                tenants.add(a.claim().tenantKnown() ? a.tenant() : "?");
            }
            GpuHealth h = health.get(gpu.uuid());
            out.append(String.format(
                    Locale.ROOT,
                    "%-3d %-40s %-9s %4d/1000 %-21s %s%n",
                    gpu.index(),
                    gpu.uuid(),
                    h == null ? "?" : h.healthy() ? "Healthy" : "Unhealthy",
                    milli,
                    ByteQuantity.format(quotas) + "/" + ByteQuantity.format(gpu.memoryBytes()),
                    tenants.isEmpty() ? "-" : String.join(",", tenants)));
            if (h != null && !h.healthy()) {
                out.append("    ").append(h.reason()).append('\n');
            }
        }
        out.append(String.format(
                Locale.ROOT,
                "%n%-19s %-7s %-18s %-3s %6s %9s %10s %-20s %6s%n",
                "POD",
                "TENANT",
                "ALLOCATION",
                "GPU",
                "QUOTA",
                "ACHIEVED",
                "THROTTLED",
                "MEMORY used/limit",
                "DENIED"));
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
                String tenant = node.agent()
                        .ledger()
                        .allocation(pod.allocationId())
                        .filter(a -> a.claim().tenantKnown())
                        .map(Allocation::tenant)
                        .orElse("?");
                String achieved = !pod.process().isAlive()
                        ? "exited"
                        : seconds <= 0
                                ? "-"
                                : String.format(
                                        Locale.ROOT,
                                        "%.1f%%",
                                        100.0
                                                * delta(
                                                        now.busyMicrosByPid(),
                                                        base.busyMicrosByPid(),
                                                        pod.process().pid())
                                                / 1e6
                                                / seconds);
                String throttled = seconds <= 0
                        ? "-"
                        : String.format(
                                Locale.ROOT,
                                "%.0f ms/s",
                                delta(now.throttledNsByAllocation(), base.throttledNsByAllocation(), pod.allocationId())
                                        / 1e6
                                        / seconds);
                out.append(String.format(
                        Locale.ROOT,
                        "%-19s %-7s %-18s %-3d %5.1f%% %9s %10s %-20s %6d%n",
                        pod.spec().name(),
                        tenant,
                        pod.allocationId(),
                        device.hostIndex(),
                        device.computeQuotaMilli() / 10.0,
                        achieved,
                        throttled,
                        ByteQuantity.format(totals.bytesReserved()) + "/"
                                + (device.memoryUnlimited()
                                        ? "unlimited"
                                        : ByteQuantity.format(device.memoryLimitBytes())),
                        totals.deniedAllocs()));
            } catch (RegionFormatException | DamagedRegionException e) {
                // the usage file is the container's to write: a damaged one is shown, never the end of the table
                out.append(pod.spec().name())
                        .append(": ")
                        .append(e.getMessage())
                        .append('\n');
            }
        }
        out.append(String.format(
                Locale.ROOT,
                "QUOTA: compute share of the GPU.  ACHIEVED: share of the GPU its "
                        + "kernels occupied over the last %.0f s%n(the simulated driver's busy time).  THROTTLED: time its "
                        + "launches waited for tokens, ms per s, summed over%nthreads.  MEMORY: bytes held / its quota.  "
                        + "DENIED: allocations refused for the quota.%n",
                seconds));
        InventorySnapshot vfs = node.vfMonitor().poll();
        Set<PciAddress> handedOut =
                node.agent().vfPlugin().map(plugin -> plugin.allocatedVfs()).orElse(Set.of());
        Map<String, String> holders = new HashMap<>();
        pods.forEach(pod -> pod.vfs().forEach(vf -> holders.put(vf, pod.spec().name())));
        out.append(String.format(
                Locale.ROOT, "%n%-14s %-14s %-10s %-22s %s%n", "VF", "PF", "RDMA", "ALLOCATED", "HEALTH"));
        vfs.pfs()
                .forEach(pf -> pf.vfs()
                        .forEach(status -> out.append(String.format(
                                Locale.ROOT,
                                "%-14s %-14s %-10s %-22s %s%n",
                                status.vf().address(),
                                pf.pf().address(),
                                status.vf().rdmaDevice().orElse("-"),
                                !handedOut.contains(status.vf().address())
                                        ? "-"
                                        : holders.getOrDefault(
                                                status.vf().address().value(), "yes"),
                                status.health()))));
        return out.toString();
    }

    private static <K> long delta(Map<K, Long> now, Map<K, Long> before, K key) {
        Long current = now.get(key);
        return current == null ? 0 : Math.max(0, current - before.getOrDefault(key, 0L));
    }

    /** The driver's busy counters of every live process and each pod's throttled time, now. */
    private Counters sample() {
        long at = nanoTime.getAsLong();
        SimNode.Run run = node.sim().run(Duration.ofSeconds(10), "omai-sim-ctl", "show");
        Map<Long, Long> busy = new HashMap<>();
        Matcher m = PROC.matcher(run.stdout());
        while (m.find()) {
            busy.put(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)));
        }
        Map<String, Long> throttled = new HashMap<>();
        for (String id : new TreeSet<>(
                node.pods().stream().map(SimulatedNode.RunningPod::allocationId).toList())) {
            try {
                node.files(id)
                        .ifPresent(files -> throttled.put(
                                id, files.usage().read().devices().getFirst().throttledNs()));
            } catch (DamagedRegionException e) {
                // no figure for this pod in this window; its row says what is wrong
            }
        }
        return new Counters(at, busy, throttled);
    }
}
