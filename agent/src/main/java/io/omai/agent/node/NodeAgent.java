package io.omai.agent.node;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.grpc.BindableService;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.deviceplugin.ContainerEdits;
import io.omai.agent.deviceplugin.DeviceListPublisher;
import io.omai.agent.deviceplugin.DevicePluginService;
import io.omai.agent.deviceplugin.KubeletRegistrar;
import io.omai.agent.deviceplugin.PluginSocketServer;
import io.omai.agent.deviceplugin.PodResourcesReconciler;
import io.omai.agent.deviceplugin.RecentGpuAllocation;
import io.omai.agent.deviceplugin.VfDevicePlugin;
import io.omai.agent.dra.DraDriver;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.gpu.GpuHealthMonitor;
import io.omai.agent.gpu.GpuInventory;
import io.omai.agent.gpu.NvmlException;
import io.omai.agent.gpu.nvml.FfmNvmlLibrary;
import io.omai.agent.gpu.nvml.NvmlDowncalls;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.ReconcileReport;
import io.omai.agent.lifecycle.AgentStartException;
import io.omai.agent.lifecycle.Closer;
import io.omai.agent.lifecycle.Loops;
import io.omai.agent.quota.DeadProcessReaper;
import io.omai.agent.quota.audit.AuditFinding;
import io.omai.agent.quota.compute.ComputeControlLoop;
import io.omai.agent.tenancy.ClaimAdmission;
import io.omai.agent.tenancy.GpuProcessAudit;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.agent.tenancy.TenantIdentity;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.kernel.FileSysfs;
import io.omai.ibvf.kernel.ProcessIpLink;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.model.PciAddress;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The milli-GPU side of the agent on one node, wired and running: NVML discovery and health, the ledger
 * (checkpoint loaded, reconciled with PodResources), the device-plugin server on its socket, registration with
 * kubelet kept alive across kubelet restarts, and periodic reconciliation. {@code run} starts one; a
 * {@code simulate} command or a test can start one in-process with {@link #start(AgentConfig, NvmlLibrary, ServerInterceptor...)}.
 */
public final class NodeAgent implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NodeAgent.class);

    private final AgentConfig config;
    private final GpuHealthMonitor health;
    private final AllocationLedger ledger;
    private final QuotaEnforcement quotas;
    private final SchedulerFacing scheduler;
    private final TenancyServices tenancy;
    private final PluginSocketServer server;
    private final KubeletRegistrar registrar;
    private final PodResourcesReconciler reconciler;
    private final Loops loops;
    private final Closer started; // in start order; close() stops them newest first
    private VfDevicePlugin vfPlugin; // null unless ib.enabled; set once in start, before the agent is returned
    private DraDriver dra; // null unless dra.enabled; set once in start, before the agent is returned

    private NodeAgent(
            AgentConfig config,
            GpuHealthMonitor health,
            AllocationLedger ledger,
            QuotaEnforcement quotas,
            SchedulerFacing scheduler,
            TenancyServices tenancy,
            PluginSocketServer server,
            KubeletRegistrar registrar,
            PodResourcesReconciler reconciler,
            Loops loops,
            Closer started) {
        this.config = config;
        this.health = health;
        this.ledger = ledger;
        this.quotas = quotas;
        this.scheduler = scheduler;
        this.tenancy = tenancy;
        this.server = server;
        this.registrar = registrar;
        this.reconciler = reconciler;
        this.loops = loops;
        this.started = started;
    }

    /**
     * Starts with the NVML library the configuration names ({@code nvml.library}); {@code pluginInterceptors}
     * wrap the device-plugin service (the metrics' latency timer).
     */
    public static NodeAgent start(AgentConfig config, ServerInterceptor... pluginInterceptors)
            throws AgentStartException {
        NvmlLibrary nvml;
        try {
            NvmlDowncalls.useLibrary(config.nvml().library());
            nvml = FfmNvmlLibrary.instance();
        } catch (LinkageError | IllegalStateException e) {
            Throwable cause =
                    e instanceof ExceptionInInitializerError init && init.getCause() != null ? init.getCause() : e;
            throw new AgentStartException("cannot bind NVML: " + cause.getMessage(), cause);
        }
        return start(config, nvml, pluginInterceptors);
    }

    /** Starts with a given NVML binding (tests: a fake, or the simulated driver). */
    public static NodeAgent start(AgentConfig config, NvmlLibrary nvml, ServerInterceptor... pluginInterceptors)
            throws AgentStartException {
        requireShimLibrary(config.shim().hostLibrary());
        Closer started = new Closer("node-agent");
        try {
            GpuInventory inventory = new GpuInventory(nvml);
            inventory.initialise();
            started.add("nvml", nvml::nvmlShutdown);
            List<GpuDevice> gpus = TenancyServices.partition(
                    inventory.discover(), config.tenancy().gpus());
            for (GpuDevice gpu : gpus) {
                log.info(
                        "event=gpu_found gpu={} index={} name=\"{}\" minor={} memory_bytes={} numa={}",
                        gpu.uuid(),
                        gpu.index(),
                        gpu.name(),
                        gpu.minorNumber(),
                        gpu.memoryBytes(),
                        gpu.numaNode());
            }
            GpuHealthMonitor health = config.nvml().healthChecks()
                    ? new GpuHealthMonitor(
                            nvml,
                            gpus,
                            config.nvml().recoveryDebounce(),
                            config.nvml().ignoredXids(),
                            System::nanoTime)
                    : GpuHealthMonitor.disabled(gpus);
            started.add("gpu-health", health);

            AllocationLedger ledger = AllocationLedger.open(
                    gpus, config.sharing(), config.directories().state(), Clock.systemUTC());
            started.add("ledger", ledger);
            ledger.keepDisplacedFilesFor(config.kubelet().releaseGracePeriod());
            ContainerEdits edits = new ContainerEdits(ledger, config);
            edits.writePreloadFile();
            Loops loops = new Loops();
            QuotaEnforcement quotas = new QuotaEnforcement(
                    ledger,
                    nvml,
                    config.sharing().computePeriodUs() * 1_000L,
                    config.audit().onTamper(),
                    GpuProcessAudit.Killer.SIGKILL);
            quotas.start(loops);
            started.add("quota-enforcement", quotas);

            PodResourcesReconciler reconciler = new PodResourcesReconciler(
                    config.directories().podResourcesSocket(),
                    config.resources().milliGpu(),
                    ledger,
                    config.kubelet().reconcileInterval(),
                    config.kubelet().releaseGracePeriod());

            // withdrawn GPUs (another plugin hands them out whole) are advertised Unhealthy
            GpuWithdrawals withdrawals = new GpuWithdrawals();
            DeviceListPublisher devices = new DeviceListPublisher(gpus, withdrawals.overlay(health.current()));
            health.addListener(changed -> devices.healthChanged(withdrawals.overlay(changed)));
            withdrawals.onChange(() -> devices.healthChanged(withdrawals.overlay(health.current())));
            started.add("list-and-watch-streams", devices::terminate);
            health.start();

            // one reservation book: the scheduler API fills it, the device plugin consumes it at Allocate
            SchedulerFacing scheduler = SchedulerFacing.start(config, ledger, health, withdrawals, pluginInterceptors);
            started.add("scheduler-facing", scheduler);
            // one client: the tenancy services' (closed with them) also reviews the scheduler API's tokens
            KubernetesClient kube =
                    TenancyServices.kubernetesApi(config.tenancy()) ? new KubernetesClientBuilder().build() : null;
            TenancyServices tenancy =
                    TenancyServices.start(config, gpus, ledger, scheduler.reservations(), withdrawals, nvml, kube);
            if (kube != null) {
                scheduler.reviewTokensWith(kube, config);
            }
            started.add("tenancy", tenancy);
            tenancy.loops().forEach(loops::add);
            quotas.reportTo(tenancy::report); // usage files found tampered: event + metric, as the NVML audit's

            Path socket = config.directories().devicePlugin().resolve(config.pluginSocketName());
            PluginSocketServer server = new PluginSocketServer(
                    socket,
                    List.of(intercepted(new DevicePluginService(tenancy.gate(), edits, devices), pluginInterceptors)));
            server.ensureListening();
            started.add("plugin-server", server);

            KubeletRegistrar registrar = new KubeletRegistrar(
                    config.directories().devicePlugin(),
                    config.resources().milliGpu(),
                    server,
                    devices::watchers,
                    config.kubelet().registrationBackoffMax());
            devices.onStreamEnded(registrar::streamEnded);
            registrar.start();
            started.add("kubelet-registrar", registrar);

            VfDevicePlugin vfPlugin = null;
            if (config.ib().enabled()) {
                vfPlugin = started.add("ib-vf-plugin", startVfPlugin(config, ledger, pluginInterceptors));
                scheduler.showVfs(vfPlugin);
            }

            DraDriver draDriver = null;
            if (config.dra().enabled()) {
                draDriver = started.add(
                        "dra", startDra(config, ledger, edits, health, withdrawals, scheduler, tenancy, vfPlugin));
                loops.add(draDriver.loop());
            }

            reconciler.start(); // reconciles at once, then every interval
            started.add("pod-resources-reconciler", reconciler);
            watchLoops(loops, config, health, registrar, reconciler);

            log.info(
                    "event=agent_started node={} resource={} gpus={} socket={} state={}",
                    config.nodeName(),
                    config.resources().milliGpu(),
                    gpus.size(),
                    socket,
                    config.directories().state());
            NodeAgent agent = new NodeAgent(
                    config, health, ledger, quotas, scheduler, tenancy, server, registrar, reconciler, loops, started);
            agent.vfPlugin = vfPlugin;
            agent.dra = draDriver;
            return agent;
        } catch (AgentStartException e) {
            started.close();
            throw e;
        } catch (NvmlException e) {
            started.close();
            throw new AgentStartException("cannot discover GPUs: " + e.getMessage(), e);
        } catch (IOException | RuntimeException e) {
            started.close();
            throw new AgentStartException("cannot start: " + e, e);
        }
    }

    /**
     * The loops {@code /healthz} judges beside the supervised ones (reaper, compute control): each one counts
     * its passes and fails the probe when the count stops moving for far longer than one pass can take.
     */
    private static void watchLoops(
            Loops loops,
            AgentConfig config,
            GpuHealthMonitor health,
            KubeletRegistrar registrar,
            PodResourcesReconciler reconciler) {
        if (config.nvml().healthChecks()) {
            // a pass waits 500 ms for an event; a failing setup sleeps at most the debounce
            loops.watch(
                    "gpu-health",
                    health::passes,
                    Duration.ofSeconds(30).plus(config.nvml().recoveryDebounce()));
        }
        // a pass waits up to 1 s, a Register call up to 5 s and a failure up to the back-off
        loops.watch(
                "kubelet-registration",
                registrar::loopPasses,
                Duration.ofSeconds(30)
                        .plus(config.kubelet().registrationBackoffMax().multipliedBy(2)));
        loops.watch(
                "pod-resources-reconcile",
                reconciler::passes,
                Duration.ofSeconds(60).plus(config.kubelet().reconcileInterval().multipliedBy(3)));
    }

    /** Every background loop of the agent, for {@code /healthz}: empty problem while each meets its deadline. */
    public Loops loops() {
        return loops;
    }

    /**
     * Every Allocate bind-mounts the shim from the host; without it kubelet would be handed a mount of a file that
     * does not exist and the container would fail to start (or run unenforced), so the agent does not start.
     */
    private static void requireShimLibrary(Path library) throws AgentStartException {
        String problem = !Files.exists(library)
                ? "does not exist"
                : !Files.isRegularFile(library)
                        ? "is not a regular file"
                        : !Files.isReadable(library) ? "is not readable" : null;
        if (problem != null) {
            throw new AgentStartException(
                    "shim.hostLibrary: " + library + " " + problem + "; expected the shim "
                            + "library (libomai-shim.so) on the host, installed by the DaemonSet's init container; every "
                            + "Allocate mounts it into the container",
                    null);
        }
    }

    public AgentConfig config() {
        return config;
    }

    public AllocationLedger ledger() {
        return ledger;
    }

    public GpuHealthMonitor health() {
        return health;
    }

    /** Reservations the scheduler API made; the device plugin consumes them at Allocate. */
    public ReservationBook reservations() {
        return scheduler.reservations();
    }

    /** The scheduler API's TCP port, or -1 when it is disabled. */
    public int schedulerApiPort() {
        return scheduler.port();
    }

    /** GPU health as advertised to kubelet: the monitor's, with GPUs another plugin hands out withdrawn. */
    public Map<String, GpuHealth> advertisedHealth() {
        return tenancy.withdrawals().overlay(health.current());
    }

    /** GPUs withdrawn from sharing because kubelet also reports them as another plugin's, with the reason. */
    public Map<String, String> withdrawnGpus() {
        return tenancy.withdrawals().current();
    }

    /** Runs one cross-check with kubelet's PodResources for GPUs another plugin hands out (instead of waiting). */
    public void checkOtherPluginNow() {
        tenancy.checkOtherPlugin();
    }

    /** {@code listener} hears of every process the NVML audit catches (the metrics count them). */
    public void onAuditFinding(Consumer<AuditFinding> listener) {
        tenancy.onAuditFinding(listener);
    }

    /** Reports a finding as the NVML audit does: an event on its pod (else the node), then every listener. */
    public void reportFinding(AuditFinding finding) {
        tenancy.report(finding);
    }

    /** The compute controller granting GPU time to every allocation's shims. */
    public ComputeControlLoop computeLoop() {
        return quotas.computeLoop();
    }

    /** The reaper releasing dead processes' bytes and mapping live ones to host pids. */
    public DeadProcessReaper reaper() {
        return quotas.reaper();
    }

    /** Usage-file slots of dead processes the reaper reclaimed since start ({@code omai_reaper_reclaims_total}). */
    public long slotsReclaimed() {
        return quotas.reaper().slotsReclaimedTotal();
    }

    /** Device memory the reaper returned with them since start, bytes. */
    public long bytesReclaimed() {
        return quotas.reaper().bytesReclaimedTotal();
    }

    /** The plugin's socket in the device-plugin directory. */
    public Path pluginSocket() {
        return server.socket();
    }

    /** Successful registrations with kubelet so far. */
    public int registrations() {
        return registrar.registrations();
    }

    /** Passes of the kubelet registration loop so far; it passes at least once a second unless stuck. */
    public long registrationLoopPasses() {
        return registrar.loopPasses();
    }

    /** kubelet restarts noticed (and re-registered after) so far. */
    public int kubeletRestarts() {
        return registrar.kubeletRestarts();
    }

    /** Reconciles with PodResources now (instead of waiting for the interval). */
    public ReconcileReport reconcileNow() throws LedgerException {
        return reconciler.reconcileOnce();
    }

    /**
     * The DRA driver ({@code dra.enabled}): same ledger, same admission lock, same files as the device plugin;
     * claims are read and slices written through the tenancy services' Kubernetes client.
     */
    private static DraDriver startDra(
            AgentConfig config,
            AllocationLedger ledger,
            ContainerEdits edits,
            GpuHealthMonitor health,
            GpuWithdrawals withdrawals,
            SchedulerFacing scheduler,
            TenancyServices tenancy,
            VfDevicePlugin vfPlugin)
            throws AgentStartException, IOException {
        if (tenancy.client() == null) {
            throw new AgentStartException(
                    "dra.enabled: true needs the Kubernetes API (ResourceClaims are read and ResourceSlices written "
                            + "there); expected tenancy.kubernetesApi: on (or auto inside a cluster)",
                    null);
        }
        ClaimAdmission admission = new ClaimAdmission(config.nodeName(), ledger, scheduler.reservations(), withdrawals);
        admission.reportTo(tenancy.events());
        DraDriver driver = DraDriver.start(
                config,
                ledger,
                admission,
                edits,
                health::current,
                withdrawals,
                tenancy.client(),
                new TenantIdentity(config.tenancy().tenantLabel()),
                PcieLocations.forDra(
                        ledger.gpus(),
                        RecentGpuAllocation.NVIDIA_GPUS,
                        new FileSysfs(config.ib().sysfsRoot())),
                Optional.ofNullable(vfPlugin).map(VfDevicePlugin::draClaims));
        health.addListener(changed -> driver.healthChanged());
        return driver;
    }

    /** The DRA driver, when {@code dra.enabled}. */
    public Optional<DraDriver> dra() {
        return Optional.ofNullable(dra);
    }

    /** The {@code omai.io/ib-vf} plugin, when {@code ib.enabled}. */
    public Optional<VfDevicePlugin> vfPlugin() {
        return Optional.ofNullable(vfPlugin);
    }

    /** The VF monitor's latest inventory, when {@code ib.enabled} (the metrics read it at scrape time). */
    public Optional<InventorySnapshot> vfInventory() {
        return vfPlugin().map(vfs -> vfs.monitor().current());
    }

    /** The VFs allocated to containers now; empty without {@code ib.enabled}. */
    public Set<PciAddress> allocatedVfs() {
        return vfPlugin().map(VfDevicePlugin::allocatedVfs).orElse(Set.of());
    }

    /** The VF plugin over the host's sysfs and {@code ip}, preferring VFs near the newest milli-GPU allocation. */
    private static VfDevicePlugin startVfPlugin(
            AgentConfig config, AllocationLedger ledger, ServerInterceptor... pluginInterceptors)
            throws AgentStartException {
        return VfDevicePlugin.start(
                config,
                new FileSysfs(config.ib().sysfsRoot()),
                ProcessIpLink.system(),
                sysfs -> new RecentGpuAllocation(
                        ledger,
                        RecentGpuAllocation.NVIDIA_GPUS,
                        gpu -> sysfs.exists(SysfsLayout.pciDevice(gpu)),
                        Clock.systemUTC(),
                        RecentGpuAllocation.WINDOW),
                pluginInterceptors);
    }

    /**
     * Stops everything {@link #start} started, newest first (reconciliation, registration, the server, ...,
     * health checks, NVML); the ledger stays on disk.
     */
    @Override
    public void close() {
        started.close();
        log.info("event=agent_stopped node={}", config.nodeName());
    }

    private static BindableService intercepted(BindableService service, ServerInterceptor... interceptors) {
        return () -> ServerInterceptors.intercept(service, interceptors);
    }
}
