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
 * The {@code omai.io/ib-vf} device plugin, wired and running: VF counts and GUIDs reconciled before anything is
 * advertised, the VF monitor polling sysfs (VFs appearing, disappearing, changing health are pushed through
 * ListAndWatch; a PF that lost its VFs, e.g. to a driver reload, is reconciled again), its own plugin socket and
 * kubelet registration (the same server and registrar as the milli-GPU plugin), and the record of allocated VFs
 * kept in step with PodResources.
 */
public final class VfDevicePlugin implements AutoCloseable {
    /** The GUID assignments file, under {@code directories.state}. */
    public static final String GUID_FILE = "ib-vf-guids";

    private static final Logger log = LoggerFactory.getLogger(VfDevicePlugin.class);
    private static final Duration SYSFS_WRITE_TIMEOUT = Duration.ofMinutes(2);
    private static final Duration RECONCILE_RETRY_MAX = Duration.ofMinutes(5);

    private final AgentConfig config;
    private final IbVfManager manager;
    private final IbVfMonitor monitor;
    private final VfAllocations allocations;
    private final DeviceListPublisher devices;
    private final PluginSocketServer server;
    private final KubeletRegistrar registrar;
    private final ExecutorService reconciling;
    private final Map<PciAddress, Integer> desiredVfs = new ConcurrentHashMap<>();
    private final AtomicBoolean reconcilePending = new AtomicBoolean();
    // written by the reconciling thread (and once before the plugin runs); read by the count check
    private volatile long reconcileNotBeforeNanos = System.nanoTime();
    private volatile Duration reconcileRetry;
    private final Closer started;

    private VfDevicePlugin(
            AgentConfig config,
            IbVfManager manager,
            IbVfMonitor monitor,
            VfAllocations allocations,
            DeviceListPublisher devices,
            PluginSocketServer server,
            KubeletRegistrar registrar,
            ExecutorService reconciling,
            Closer started) {
        this.config = config;
        this.manager = manager;
        this.monitor = monitor;
        this.allocations = allocations;
        this.devices = devices;
        this.server = server;
        this.registrar = registrar;
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
            VfAllocations allocations = new VfAllocations(Clock.systemUTC());
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
            DeviceListPublisher devices = new DeviceListPublisher(VfDeviceList.of(InventorySnapshot.EMPTY));
            started.add("list-and-watch-streams", devices::terminate);
            VfPluginService service = new VfPluginService(
                    ib.resourceName(), manager, monitor::current, allocations, gpus.pairing(sysfs), devices);
            Path socket = config.directories().devicePlugin().resolve(ib.socketName());
            PluginSocketServer server = new PluginSocketServer(socket, List.of(intercepted(service, interceptors)));
            KubeletRegistrar registrar = new KubeletRegistrar(
                    config.directories().devicePlugin(),
                    ib.resourceName(),
                    server,
                    devices::watchers,
                    config.kubelet().registrationBackoffMax());
            devices.onStreamEnded(registrar::streamEnded);

            VfDevicePlugin plugin = new VfDevicePlugin(
                    config, manager, monitor, allocations, devices, server, registrar, reconciling, started);
            plugin.desiredVfs.putAll(desired);
            plugin.reconcileRetry = ib.pollInterval();
            plugin.recordReconcile(plugin.reconcileAll()); // before advertising: counts, GUIDs, link policy
            monitor.poll();
            // publishes the first list at once
            started.add("inventory-subscription", monitor.subscribe(plugin.new InventoryListener()));
            monitor.start(polling, ib.pollInterval());
            started.add("vf-monitor", monitor);

            server.ensureListening();
            started.add("plugin-server", server);
            registrar.start();
            started.add("kubelet-registrar", registrar);
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
            log.info(
                    "event=ib_vf_plugin_started resource={} vfs={} socket={} sysfs={}",
                    ib.resourceName(),
                    VfDeviceList.managedVfs(monitor.current()).size(),
                    socket,
                    ib.sysfsRoot());
            return plugin;
        } catch (IOException | RuntimeException e) {
            started.close();
            throw new AgentStartException("cannot start the " + ib.resourceName() + " plugin: " + e.getMessage(), e);
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
            List<PciAddress> released =
                    allocations.reconcile(heldVfIds(), config.kubelet().releaseGracePeriod());
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

    /** Every device ID of our resource some container holds, as kubelet's PodResources lists it. */
    private List<String> heldVfIds() {
        ManagedChannel channel = UnixSocketGrpc.channel(config.directories().podResourcesSocket());
        try {
            List<String> held = new ArrayList<>();
            for (PodResources pod : PodResourcesListerGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(5, TimeUnit.SECONDS)
                    .list(ListPodResourcesRequest.getDefaultInstance())
                    .getPodResourcesList()) {
                for (ContainerResources container : pod.getContainersList()) {
                    for (ContainerDevices devices : container.getDevicesList()) {
                        if (devices.getResourceName().equals(config.ib().resourceName())) {
                            held.addAll(devices.getDeviceIdsList());
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

        @Override
        public synchronized void onInventoryChanged(InventorySnapshot snapshot) {
            devices.publish(VfDeviceList.of(snapshot));
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
        }

        @Override
        public void onDiscoveryFailed(IbVfException failure) {
            log.warn(
                    "event=ib_vf_discovery_failed error=\"{}\" detail=\"keeping the last list\"", failure.getMessage());
        }
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

    public Path pluginSocket() {
        return server.socket();
    }

    public int registrations() {
        return registrar.registrations();
    }

    @Override
    public void close() {
        started.close();
        log.info("event=ib_vf_plugin_stopped resource={}", config.ib().resourceName());
    }

    private static BindableService intercepted(BindableService service, ServerInterceptor... interceptors) {
        return () -> ServerInterceptors.intercept(service, interceptors);
    }
}
