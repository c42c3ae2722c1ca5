package io.omai.agent.schedapi;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.tenancy.LedgerNodeCapacity;
import io.omai.agent.tenancy.Subscription;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Function;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's allocation state for the scheduler API, read from the allocation ledger: one immutable snapshot,
 * rebuilt when the ledger, GPU health or the VF inventory changes (never on the read path, which the reservation
 * book calls under its lock), with a generation that grows on every rebuild.
 */
public final class LedgerNodeInventory implements NodeInventory, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(LedgerNodeInventory.class);

    private final String nodeName;
    private final AllocationLedger ledger;
    private final Supplier<Map<String, GpuHealth>> health;
    private final DeviceAttributeOverlay overlay;
    private final Supplier<List<HcaSnapshot>> hcas;
    private final Function<Allocation, String> tenantOf;
    private final Supplier<List<ContainerHolding>> vfHoldings;
    private final Function<String, PciePlace> pcieOf;
    private final List<Runnable> listeners = new CopyOnWriteArrayList<>();
    private final AllocationLedger.Subscription ledgerSubscription;

    @GuardedBy("this")
    private long generation;

    private volatile NodeSnapshot current;

    /**
     * @param health each GPU's health by UUID, as the health monitor judges it now
     * @param hcas the HCAs and their VFs now (empty when the VF plugin is off)
     * @param tenantOf the tenant an allocation belongs to ("" when not known yet)
     */
    public LedgerNodeInventory(
            String nodeName,
            AllocationLedger ledger,
            Supplier<Map<String, GpuHealth>> health,
            DeviceAttributeOverlay overlay,
            Supplier<List<HcaSnapshot>> hcas,
            Function<Allocation, String> tenantOf) {
        this(nodeName, ledger, health, overlay, hcas, tenantOf, List::of, uuid -> PciePlace.UNKNOWN);
    }

    /**
     * @param vfHoldings the VFs containers hold, one entry per container with an empty GPU (the VF plugin's
     *     record); merged into the container's GPU entries where it has any
     * @param pcieOf each GPU's place in the PCIe tree by UUID
     */
    public LedgerNodeInventory(
            String nodeName,
            AllocationLedger ledger,
            Supplier<Map<String, GpuHealth>> health,
            DeviceAttributeOverlay overlay,
            Supplier<List<HcaSnapshot>> hcas,
            Function<Allocation, String> tenantOf,
            Supplier<List<ContainerHolding>> vfHoldings,
            Function<String, PciePlace> pcieOf) {
        this.nodeName = nodeName;
        this.vfHoldings = vfHoldings;
        this.pcieOf = pcieOf;
        this.ledger = ledger;
        this.health = health;
        this.overlay = overlay;
        this.hcas = hcas;
        this.tenantOf = tenantOf;
        rebuild();
        this.ledgerSubscription = ledger.onChange(this::changed);
    }

    /** The tenant of an allocation by the default identity rule: the namespace of its "namespace/pod/container". */
    public static String namespaceOf(Allocation allocation) {
        String owner = allocation.owner();
        int slash = owner.indexOf('/');
        return slash > 0 ? owner.substring(0, slash) : "";
    }

    @Override
    public NodeSnapshot snapshot() {
        return current;
    }

    @Override
    public Subscription onChange(Runnable listener) {
        listeners.add(listener);
        return () -> listeners.remove(listener);
    }

    /** Rebuilds the snapshot and tells the listeners; call when health or the VF inventory changed. */
    public void changed() {
        rebuild();
        for (Runnable listener : listeners) {
            try {
                listener.run();
            } catch (RuntimeException e) {
                log.warn("event=node_state_listener_failed", e);
            }
        }
    }

    private synchronized void rebuild() {
        current = read(Set.of(), generation + 1);
        generation++;
    }

    /**
     * The node as the ledger holds it at this moment, leaving out {@code departed} allocations: the capacity model
     * the reservation book reads under its lock (never the published snapshot, which is rebuilt later on the
     * ledger's notifier thread). The same computation as the admission gate's, {@link LedgerNodeCapacity#loads}.
     */
    public NodeSnapshot live(Set<String> departed) {
        return read(departed, current == null ? 0 : current.generation());
    }

    private NodeSnapshot read(Set<String> departed, long generationNow) {
        Map<String, LedgerNodeCapacity.GpuLoad> loads = LedgerNodeCapacity.loads(ledger, departed, tenantOf);
        Map<String, GpuHealth> healthNow = health.get();
        List<GpuSnapshot> gpus = new ArrayList<>();
        for (GpuDevice gpu : ledger.gpus()) {
            GpuHealth h = healthNow.get(gpu.uuid());
            DeviceHealth deviceHealth = h == null || h.healthy()
                    ? DeviceHealth.HEALTHY
                    : DeviceHealth.unhealthy(h.reason().isBlank() ? "unhealthy" : h.reason());
            LedgerNodeCapacity.GpuLoad load = loads.get(gpu.uuid());
            PciePlace place = pcieOf.apply(gpu.uuid());
            gpus.add(overlay.apply(new GpuSnapshot(
                    gpu.uuid(),
                    gpu.index(),
                    gpu.name(),
                    gpu.memoryBytes(),
                    1000,
                    load == null ? 0 : load.milli(),
                    load == null ? 0L : load.memoryBytes(),
                    deviceHealth,
                    gpu.hasNumaNode() ? gpu.numaNode() : -1,
                    Map.of(),
                    Set.of(),
                    load == null ? Set.of() : load.tenants(),
                    place.pciAddress(),
                    place.pcieSwitch())));
        }
        return new NodeSnapshot(nodeName, generationNow, gpus, hcas.get(), holdings(departed));
    }

    /**
     * What each container holds, counted as {@link LedgerNodeCapacity#loads} counts it (same quotas, same
     * departed allocations left out), so the entries of a GPU add up to its allocated totals.
     */
    private List<ContainerHolding> holdings(Set<String> departed) {
        List<ContainerHolding> entries = new ArrayList<>();
        for (LedgerNodeCapacity.GpuShare share : LedgerNodeCapacity.shares(ledger, departed)) {
            Allocation allocation = share.allocation();
            entries.add(new ContainerHolding(
                    allocation.claim().podUid(),
                    allocation.podNamespace(),
                    allocation.podName(),
                    containerOf(allocation),
                    tenantOf.apply(allocation),
                    share.gpuUuid(),
                    share.milli(),
                    share.memoryBytes(),
                    List.of()));
        }
        for (ContainerHolding vfs : vfHoldings.get()) {
            int first = -1;
            for (int i = 0; i < entries.size() && first < 0; i++) {
                ContainerHolding e = entries.get(i);
                if (e.podNamespace().equals(vfs.podNamespace())
                        && e.podName().equals(vfs.podName())
                        && e.container().equals(vfs.container())) {
                    first = i;
                }
            }
            if (first < 0) {
                String tenant = entries.stream()
                        .filter(e -> e.podNamespace().equals(vfs.podNamespace())
                                && e.podName().equals(vfs.podName()))
                        .map(ContainerHolding::tenant)
                        .findFirst()
                        .orElse(vfs.tenant());
                String podUid = vfs.podUid().isEmpty()
                        ? entries.stream()
                                .filter(e -> e.podNamespace().equals(vfs.podNamespace())
                                        && e.podName().equals(vfs.podName()))
                                .map(ContainerHolding::podUid)
                                .findFirst()
                                .orElse("")
                        : vfs.podUid();
                entries.add(new ContainerHolding(
                        podUid, vfs.podNamespace(), vfs.podName(), vfs.container(), tenant, "", 0, 0, vfs.vfIds()));
            } else {
                ContainerHolding e = entries.get(first);
                entries.set(
                        first,
                        new ContainerHolding(
                                e.podUid(),
                                e.podNamespace(),
                                e.podName(),
                                e.container(),
                                e.tenant(),
                                e.gpuUuid(),
                                e.milli(),
                                e.memoryBytes(),
                                vfs.vfIds()));
            }
        }
        entries.sort(Comparator.comparing(ContainerHolding::podNamespace)
                .thenComparing(ContainerHolding::podName)
                .thenComparing(ContainerHolding::container)
                .thenComparing(ContainerHolding::gpuUuid));
        return entries;
    }

    private static String containerOf(Allocation allocation) {
        if (!allocation.claim().container().isEmpty()) {
            return allocation.claim().container();
        }
        String[] parts = allocation.owner().split("/", 3);
        return parts.length == 3 ? parts[2] : "";
    }

    @Override
    public void close() {
        ledgerSubscription.close();
        listeners.clear();
    }
}
