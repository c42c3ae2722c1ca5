package io.omai.agent.deviceplugin;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.grpc.BindableService;
import io.grpc.ManagedChannel;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.StatusRuntimeException;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.deviceplugin.podresources.v1.ContainerDevices;
import io.omai.agent.deviceplugin.podresources.v1.ContainerResources;
import io.omai.agent.deviceplugin.podresources.v1.ListPodResourcesRequest;
import io.omai.agent.deviceplugin.podresources.v1.PodResources;
import io.omai.agent.deviceplugin.podresources.v1.PodResourcesListerGrpc;
import io.omai.agent.lifecycle.AgentStartException;
import io.omai.agent.lifecycle.Closer;
import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.IbVfManagerConfig;
import io.omai.ibvf.config.NodeRebindLock;
import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.config.Sleeper;
import io.omai.ibvf.error.IbVfException;
import io.omai.ibvf.guid.FileGuidStore;
import io.omai.ibvf.health.VfHealth;
import io.omai.ibvf.inventory.IbVfListener;
import io.omai.ibvf.inventory.IbVfMonitor;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.inventory.PfStatus;
import io.omai.ibvf.inventory.VfStatus;
import io.omai.ibvf.kernel.IpLink;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.kernel.TimeLimitedSysfs;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PhysicalFunction;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The VF device plugins ({@code omai.io/ib-vf}, and e.g. {@code omai.io/roce-vf} when {@code ib.resources} names
 * one), wired and running: VF counts and GUIDs reconciled before anything is advertised, the VF monitor polling
 * sysfs (VFs appearing, disappearing, changing health are pushed through ListAndWatch; a PF that lost its VFs, e.g.
 * to a driver reload, is reconciled again), one plugin socket and kubelet registration per resource (the same
 * server and registrar as the milli-GPU plugin) offering the PFs its selector picks ({@link VfSelection}), and the
 * record of allocated VFs kept in step with PodResources.
 */
public final class VfDevicePlugin implements AutoCloseable {
    /** The VFs of prepared DRA claims, under {@code directories.state}. */
    public static final String DRA_CLAIMS_FILE = "dra-vf-claims";

    /** The GUID assignments file, under {@code directories.state}. */
    public static final String GUID_FILE = "ib-vf-guids";

    private static final Logger log = LoggerFactory.getLogger(VfDevicePlugin.class);
    private static final Duration SYSFS_WRITE_TIMEOUT = Duration.ofMinutes(2);
    private static final Duration RECONCILE_RETRY_MAX = Duration.ofMinutes(5);

    private final AgentConfig config;
    private final IbVfManager manager;
    private final IbVfMonitor monitor;
    private final VfAllocations allocations;
    private final VfSelection selection;
    private final List<Offer> offers;
    private final Sysfs sysfs;
    private final ExecutorService reconciling;
    private final List<Runnable> changeListeners = new java.util.concurrent.CopyOnWriteArrayList<>();
    // namespace/pod/container of each held VF, as PodResources said at the last reconcile
    private volatile Map<PciAddress, String> owners = Map.of();
    private final Map<PciAddress, Integer> desiredVfs = new ConcurrentHashMap<>();
    private final AtomicBoolean reconcilePending = new AtomicBoolean();
    // written by the reconciling thread (and once before the plugin runs); read by the count check
    private volatile long reconcileNotBeforeNanos = System.nanoTime();
    private volatile Duration reconcileRetry;
    private final Closer started;

    /** One resource's plugin: its ListAndWatch list, socket and kubelet registration. */
    private record Offer(
            String resourceName, DeviceListPublisher devices, PluginSocketServer server, KubeletRegistrar registrar) {}

    private VfDevicePlugin(
            AgentConfig config,
            IbVfManager manager,
            IbVfMonitor monitor,
            VfAllocations allocations,
            VfSelection selection,
            List<Offer> offers,
            Sysfs sysfs,
            ExecutorService reconciling,
            Closer started) {
        this.config = config;
        this.manager = manager;
        this.monitor = monitor;
        this.allocations = allocations;
        this.selection = selection;
        this.offers = List.copyOf(offers);
        this.sysfs = sysfs;
        this.reconciling = reconciling;
        this.started = started;
    }

    /**
     * Reconciles, then advertises. {@code sysfs} and {@code ipLink} are the kernel ({@code FileSysfs} over
     * {@code ib.sysfsRoot}, {@code ProcessIpLink}) or a fake one in tests.
     */
    public static VfDevicePlugin start(
            AgentConfig config, Sysfs sysfs, IpLink ipLink, GpuPairingSource gpus, ServerInterceptor... interceptors)
            throws AgentStartException {
        AgentConfig.Ib ib = config.ib();
        if (!sysfs.exists(SysfsLayout.PCI_DEVICES)) {
            throw new AgentStartException(
                    "ib.sysfsRoot " + ib.sysfsRoot() + " has no " + SysfsLayout.PCI_DEVICES
                            + "; expected the host's sysfs (/sys, mounted read-write by components/ib-sriov)",
                    null);
        }
        Closer started = new Closer("ib-vf-plugin");
        try {
            IbVfManager manager = new IbVfManager(
                    new IbVfManagerConfig(
                            config.nodeName(),
                            ib.guidRange()
                                    .orElseThrow(() -> new AgentStartException(
                                            "ib.guidRange is not set; the VF plugin needs this node's block of GUIDs",
                                            null)),
                            ib.vfLinkState(),
                            ReadinessPolicy.DEFAULT),
                    new TimeLimitedSysfs(sysfs, SYSFS_WRITE_TIMEOUT),
                    ipLink,
                    new FileGuidStore(config.directories().state().resolve(GUID_FILE)),
                    new NodeRebindLock(ib.rebindLock()),
                    Sleeper.REAL);
            IbVfMonitor monitor = manager.newMonitor();
            VfAllocations allocations = new VfAllocations(
                    Clock.systemUTC(), config.directories().state().resolve(DRA_CLAIMS_FILE));
            ScheduledExecutorService polling = Executors.newSingleThreadScheduledExecutor(
                    Thread.ofVirtual().name("ib-vf-monitor").factory());
            started.add("vf-polling", polling::shutdownNow);
            ExecutorService reconciling = Executors.newSingleThreadExecutor(
                    Thread.ofVirtual().name("ib-vf-reconcile").factory());
            started.add("vf-reconciling", reconciling::shutdownNow);

            Map<PciAddress, Integer> desired = new HashMap<>();
            for (PhysicalFunction pf : manager.discover()) {
                if (pf.linkLayer() == LinkLayer.INFINIBAND || pf.rdmaDevice().isPresent()) {
                    // Unconfigured PFs keep the count they have now, also after a driver reload wiped their VFs.
                    desired.put(
                            pf.address(),
                            ib.desiredVfs()
                                    .getOrDefault(
                                            pf.address(), ib.desiredVfsEveryPf().orElse(pf.numVfs())));
                }
            }
            if (desired.isEmpty()) {
                log.warn(
                        "event=ib_no_pfs sysfs={} detail=\"no InfiniBand or RoCE PF with SR-IOV: nothing to "
                                + "advertise until one appears\"",
                        ib.sysfsRoot());
            }
            ib.desiredVfs().keySet().stream()
                    .filter(pf -> !desired.containsKey(pf))
                    .forEach(pf -> log.warn(
                            "event=ib_pf_not_found pf={} detail=\"ib.desiredVfs names a PF that is not an SR-IOV "
                                    + "RDMA PF on this node\"",
                            pf));
            VfSelection selection = new VfSelection(ib.resources(), sysfs);
            GpuPairing pairing = gpus.pairing(sysfs);
            List<Offer> offers = new ArrayList<>();
            for (AgentConfig.VfResource resource : ib.resources()) {
                String name = resource.name();
                DeviceListPublisher devices = new DeviceListPublisher(VfDeviceList.of(InventorySnapshot.EMPTY));
                started.add("list-and-watch-streams " + name, devices::terminate);
                VfPluginService service = new VfPluginService(
                        name,
                        manager,
                        () -> selection.offeredBy(name, monitor.current()),
                        allocations,
                        pairing,
                        devices);
                Path socket = config.directories().devicePlugin().resolve(resource.socketName());
                PluginSocketServer server = new PluginSocketServer(socket, List.of(intercepted(service, interceptors)));
                KubeletRegistrar registrar = new KubeletRegistrar(
                        config.directories().devicePlugin(),
                        name,
                        server,
                        devices::watchers,
                        config.kubelet().registrationBackoffMax());
                devices.onStreamEnded(registrar::streamEnded);
                offers.add(new Offer(name, devices, server, registrar));
            }

            VfDevicePlugin plugin = new VfDevicePlugin(
                    config, manager, monitor, allocations, selection, offers, sysfs, reconciling, started);
            allocations.onChange(plugin::changed);
            allocations.onChange(plugin::publishListsIfClaimsChanged);
            plugin.desiredVfs.putAll(desired);
            plugin.reconcileRetry = ib.pollInterval();
            plugin.recordReconcile(plugin.reconcileAll()); // before advertising: counts, GUIDs, link policy
            List<VfSelection.Conflict> conflicts = selection.conflicts(monitor.poll());
            if (!conflicts.isEmpty()) {
                throw new AgentStartException(
                        "ib.resources: "
                                + conflicts.stream()
                                        .map(VfSelection.Conflict::describe)
                                        .collect(java.util.stream.Collectors.joining("; ")),
                        null);
            }
            // publishes the first list at once
            started.add("inventory-subscription", monitor.subscribe(plugin.new InventoryListener()));
            monitor.start(polling, ib.pollInterval());
            started.add("vf-monitor", monitor);

            for (Offer offer : offers) {
                offer.server().ensureListening();
                started.add("plugin-server " + offer.resourceName(), offer.server());
                offer.registrar().start();
                started.add("kubelet-registrar " + offer.resourceName(), offer.registrar());
            }
            var _ = polling.scheduleWithFixedDelay(
                    plugin::reconcileAllocations,
                    0,
                    config.kubelet().reconcileInterval().toMillis(),
                    TimeUnit.MILLISECONDS);
            // Also without an inventory change: a reconcile that failed (PF driver not back yet) is tried again.
            var _ = polling.scheduleWithFixedDelay(
                    () -> {
                        try {
                            plugin.reconcileIfCountsDiffer(monitor.current());
                        } catch (RuntimeException e) { // a periodic task that throws is never run again
                            log.error("event=ib_vf_count_check_failed", e);
                        }
                    },
                    ib.pollInterval().toMillis(),
                    ib.pollInterval().toMillis(),
                    TimeUnit.MILLISECONDS);
            for (Map.Entry<String, InventorySnapshot> view :
                    selection.split(monitor.current()).entrySet()) {
                log.info(
                        "event=ib_vf_plugin_started resource={} pfs={} vfs={} sysfs={}",
                        view.getKey(),
                        VfDeviceList.managedPfs(view.getValue()).stream()
                                .map(pf -> pf.pf().address().value())
                                .toList(),
                        VfDeviceList.managedVfs(view.getValue()).size(),
                        ib.sysfsRoot());
            }
            return plugin;
        } catch (AgentStartException e) {
            started.close();
            throw e;
        } catch (IOException | RuntimeException e) {
            started.close();
            throw new AgentStartException(
                    "cannot start the "
                            + ib.resources().stream()
                                    .map(AgentConfig.VfResource::name)
                                    .toList() + " plugin: " + e.getMessage(),
                    e);
        }
    }

    /** Where the VF plugin learns the GPUs of the container being admitted, given the sysfs it reads. */
    @FunctionalInterface
    public interface GpuPairingSource {
        GpuPairing pairing(Sysfs sysfs);
    }

    /**
     * Brings every managed PF to its desired VF count, GUIDs and link policy; a failing PF is logged, not fatal.
     *
     * @return true when every PF reconciled
     */
    private boolean reconcileAll() {
        boolean allReconciled = true;
        for (Map.Entry<PciAddress, Integer> pf : new TreeMap<>(desiredVfs).entrySet()) {
            try {
                IbVfManager.ReconcileResult result = manager.reconcile(pf.getKey(), pf.getValue());
                log.info(
                        "event=ib_vf_reconciled pf={} vfs_before={} vfs={} guids_set={}",
                        pf.getKey(),
                        result.previousVfs(),
                        result.enabledVfs(),
                        result.reconfigured().size());
            } catch (IbVfException e) {
                // Its VFs stay Unhealthy (count, GUID or state not as desired) and are not offered; the rest go on.
                log.error(
                        "event=ib_vf_reconcile_failed pf={} desired_vfs={} error=\"{}\"",
                        pf.getKey(),
                        pf.getValue(),
                        e.getMessage());
                allReconciled = false;
            }
        }
        return allReconciled;
    }

    /** After a failure the next attempt waits, doubling up to 5 minutes; a success resets the wait. */
    private void recordReconcile(boolean allReconciled) {
        Duration pollInterval = config.ib().pollInterval();
        if (allReconciled) {
            reconcileRetry = pollInterval;
            reconcileNotBeforeNanos = System.nanoTime();
            return;
        }
        reconcileNotBeforeNanos = System.nanoTime() + reconcileRetry.toNanos();
        log.warn("event=ib_vf_reconcile_retry in_ms={}", reconcileRetry.toMillis());
        Duration doubled = reconcileRetry.multipliedBy(2);
        reconcileRetry = doubled.compareTo(RECONCILE_RETRY_MAX) > 0 ? RECONCILE_RETRY_MAX : doubled;
    }

    /**
     * Reconciles on the reconcile thread when a managed PF's VF count differs from the desired one (a driver reload
     * or firmware reset wiped them), at most one at a time and not before a failed attempt's wait is over. Only
     * counts trigger this: rebinding a VF to fix its GUID would renumber {@code uverbsN} under a running pod.
     */
    private void reconcileIfCountsDiffer(InventorySnapshot snapshot) {
        for (PfStatus pf : VfDeviceList.managedPfs(snapshot)) {
            Integer wanted = desiredVfs.get(pf.pf().address());
            if (wanted == null || pf.pf().numVfs() == wanted) {
                continue;
            }
            if (System.nanoTime() - reconcileNotBeforeNanos >= 0 && reconcilePending.compareAndSet(false, true)) {
                log.warn(
                        "event=ib_vf_count_changed pf={} vfs={} desired={} detail=\"reconciling\"",
                        pf.pf().address(),
                        pf.pf().numVfs(),
                        wanted);
                reconciling.execute(() -> {
                    try {
                        recordReconcile(reconcileAll());
                        monitor.poll();
                    } finally {
                        reconcilePending.set(false);
                    }
                });
            }
            return;
        }
    }

    private void reconcileAllocations() {
        try {
            Map<String, String> held = heldVfIds();
            Map<PciAddress, String> ownersNow = new TreeMap<>();
            held.forEach((id, owner) -> {
                if (PciAddress.isPciAddress(id)) {
                    ownersNow.put(PciAddress.of(id), owner);
                }
            });
            boolean ownersChanged = !ownersNow.equals(owners);
            owners = Map.copyOf(ownersNow);
            List<PciAddress> released =
                    allocations.reconcile(held.keySet(), config.kubelet().releaseGracePeriod());
            if (ownersChanged && released.isEmpty()) {
                changed();
            }
            if (!released.isEmpty()) {
                log.info("event=ib_vf_released vfs={} detail=\"no container holds them any more\"", released);
            }
        } catch (StatusRuntimeException e) {
            log.warn(
                    "event=pod_resources_unavailable socket={} status={} detail=\"no VF released\"",
                    config.directories().podResourcesSocket(),
                    e.getStatus());
        } catch (RuntimeException e) {
            log.error("event=ib_vf_allocation_reconcile_failed", e);
        }
    }

    /**
     * Every device ID of our resources some container holds, as kubelet's PodResources lists it, with the holder
     * as namespace/pod/container.
     */
    private Map<String, String> heldVfIds() {
        Set<String> ours = new java.util.HashSet<>();
        offers.forEach(offer -> ours.add(offer.resourceName()));
        ManagedChannel channel = UnixSocketGrpc.channel(config.directories().podResourcesSocket());
        try {
            Map<String, String> held = new HashMap<>();
            for (PodResources pod : PodResourcesListerGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(5, TimeUnit.SECONDS)
                    .list(ListPodResourcesRequest.getDefaultInstance())
                    .getPodResourcesList()) {
                for (ContainerResources container : pod.getContainersList()) {
                    for (ContainerDevices devices : container.getDevicesList()) {
                        if (ours.contains(devices.getResourceName())) {
                            String owner = pod.getNamespace() + "/" + pod.getName() + "/" + container.getName();
                            devices.getDeviceIdsList().forEach(id -> held.put(id, owner));
                        }
                    }
                }
            }
            return held;
        } finally {
            UnixSocketGrpc.close(channel);
        }
    }

    /** Turns every inventory change into a ListAndWatch list; logs health transitions; re-reconciles lost VFs. */
    private final class InventoryListener implements IbVfListener {
        // the polling thread, the reconcile thread's poll and the first call at subscribe
        @GuardedBy("this")
        private Map<PciAddress, VfHealth> lastHealth = Map.of();

        @GuardedBy("this")
        private List<VfSelection.Conflict> lastConflicts = List.of();

        @Override
        public synchronized void onInventoryChanged(InventorySnapshot snapshot) {
            publishLists(snapshot);
            List<VfSelection.Conflict> conflicts = selection.conflicts(snapshot);
            if (!conflicts.equals(lastConflicts)) {
                conflicts.forEach(conflict -> log.error(
                        "event=ib_pf_selected_twice pf={} resources={} detail=\"{}; its VFs are offered by neither\"",
                        conflict.pf(),
                        conflict.resources(),
                        conflict.describe()));
                lastConflicts = conflicts;
            }
            Map<PciAddress, VfHealth> health = new HashMap<>();
            for (VfStatus vf : VfDeviceList.managedVfs(snapshot)) {
                PciAddress address = vf.vf().address();
                health.put(address, vf.health());
                VfHealth before = lastHealth.get(address);
                if (before == null) {
                    log.info(
                            "event=ib_vf_found vf={} pf={} health=\"{}\"",
                            address,
                            vf.vf().pf(),
                            vf.health());
                } else if (!before.equals(vf.health())) {
                    if (vf.health().isHealthy()) {
                        log.info("event=ib_vf_healthy vf={} was=\"{}\"", address, before);
                    } else {
                        log.warn("event=ib_vf_unhealthy vf={} reasons=\"{}\"", address, vf.health());
                    }
                }
            }
            Set<PciAddress> gone = new TreeSet<>(lastHealth.keySet());
            gone.removeAll(health.keySet());
            if (!gone.isEmpty()) {
                log.warn("event=ib_vf_gone vfs={}", gone);
            }
            lastHealth = health;
            reconcileIfCountsDiffer(snapshot);
            changed();
        }

        @Override
        public void onDiscoveryFailed(IbVfException failure) {
            log.warn(
                    "event=ib_vf_discovery_failed error=\"{}\" detail=\"keeping the last list\"", failure.getMessage());
        }
    }

    // the VF lists as last published: under the lock so an older inventory never overwrites a newer list
    @GuardedBy("this")
    private Set<PciAddress> listedAsClaimed = Set.of();

    /** Each resource's ListAndWatch list from {@code snapshot}, VFs held by DRA claims Unhealthy. */
    private synchronized void publishLists(InventorySnapshot snapshot) {
        Set<PciAddress> claimed = allocations.claims().keySet();
        Map<String, InventorySnapshot> views = selection.split(snapshot);
        for (Offer offer : offers) {
            offer.devices().publish(VfDeviceList.of(views.get(offer.resourceName()), claimed));
        }
        listedAsClaimed = Set.copyOf(claimed);
    }

    /** A claim took or released VFs: the lists follow at once (before the claim's prepare answers). */
    private void publishListsIfClaimsChanged() {
        synchronized (this) {
            if (listedAsClaimed.equals(allocations.claims().keySet())) {
                return;
            }
        }
        publishLists(monitor.current());
    }

    /** The DRA driver's side of the bookkeeper: the VFs of the first resource ({@code ib.resources[0]}). */
    public VfClaims draClaims() {
        String resource = offers.getFirst().resourceName();
        return new VfClaims(
                resource, manager, () -> selection.offeredBy(resource, monitor.current()), allocations, this::onChange);
    }

    public IbVfMonitor monitor() {
        return monitor;
    }

    public IbVfManager manager() {
        return manager;
    }

    /** PCI addresses of the VFs handed out now (released when PodResources no longer names them). */
    public Set<PciAddress> allocatedVfs() {
        return allocations.current();
    }

    /** The first resource's plugin socket (the only one unless {@code ib.resources} names more). */
    public Path pluginSocket() {
        return offers.getFirst().server().socket();
    }

    /** The plugin socket of {@code resourceName}. */
    public Path pluginSocket(String resourceName) {
        return offer(resourceName).server().socket();
    }

    /** How often the first resource registered with kubelet. */
    public int registrations() {
        return offers.getFirst().registrar().registrations();
    }

    public int registrations(String resourceName) {
        return offer(resourceName).registrar().registrations();
    }

    private Offer offer(String resourceName) {
        return offers.stream()
                .filter(offer -> offer.resourceName().equals(resourceName))
                .findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no VF resource " + resourceName + "; configured: "
                        + offers.stream().map(Offer::resourceName).toList()));
    }

    /** The resource offering {@code pf}'s VFs; empty when no selector, or more than one, picks it. */
    public java.util.Optional<String> resourceOf(PhysicalFunction pf) {
        return selection.resourceOf(pf);
    }

    /** The sysfs the plugin reads (the host's, or a fake one in tests). */
    public Sysfs sysfs() {
        return sysfs;
    }

    /** The holder (namespace/pod/container) of each VF PodResources lists, as of the last reconcile. */
    public Map<PciAddress, String> vfOwners() {
        return owners;
    }

    /** Runs {@code listener} after the inventory or the allocated VFs changed. */
    public void onChange(Runnable listener) {
        changeListeners.add(listener);
    }

    private void changed() {
        for (Runnable listener : changeListeners) {
            try {
                listener.run();
            } catch (RuntimeException e) {
                log.warn("event=ib_vf_change_listener_failed", e);
            }
        }
    }

    @Override
    public void close() {
        started.close();
        log.info(
                "event=ib_vf_plugin_stopped resources={}",
                offers.stream().map(Offer::resourceName).toList());
    }

    private static BindableService intercepted(BindableService service, ServerInterceptor... interceptors) {
        return () -> ServerInterceptors.intercept(service, interceptors);
    }
}
