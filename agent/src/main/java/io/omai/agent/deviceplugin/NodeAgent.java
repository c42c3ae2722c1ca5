package io.omai.agent.deviceplugin;

import io.grpc.BindableService;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealthMonitor;
import io.omai.agent.gpu.GpuInventory;
import io.omai.agent.gpu.NvmlException;
import io.omai.agent.gpu.nvml.FfmNvmlLibrary;
import io.omai.agent.gpu.nvml.NvmlDowncalls;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.ReconcileReport;
import io.omai.agent.tenancy.GpuWithdrawals;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
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
    private final NvmlLibrary nvml;
    private final GpuHealthMonitor health;
    private final AllocationLedger ledger;
    private final QuotaEnforcement quotas;
    private final SchedulerFacing scheduler;
    private final TenancyServices tenancy;
    private final DeviceListPublisher devices;
    private final PluginSocketServer server;
    private final KubeletRegistrar registrar;
    private final PodResourcesReconciler reconciler;
    private final io.omai.agent.lifecycle.Loops loops;
    private VfDevicePlugin vfPlugin; // null unless ib.enabled; set once in start, before the agent is returned

    private NodeAgent(AgentConfig config, NvmlLibrary nvml, GpuHealthMonitor health, AllocationLedger ledger,
                      QuotaEnforcement quotas, SchedulerFacing scheduler, TenancyServices tenancy,
                      DeviceListPublisher devices, PluginSocketServer server, KubeletRegistrar registrar,
                      PodResourcesReconciler reconciler, io.omai.agent.lifecycle.Loops loops) {
        this.config = config;
        this.nvml = nvml;
        this.health = health;
        this.ledger = ledger;
        this.quotas = quotas;
        this.scheduler = scheduler;
        this.tenancy = tenancy;
        this.devices = devices;
        this.server = server;
        this.registrar = registrar;
        this.reconciler = reconciler;
        this.loops = loops;
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
            Throwable cause = e instanceof ExceptionInInitializerError init && init.getCause() != null ? init.getCause() : e;
            throw new AgentStartException("cannot bind NVML: " + cause.getMessage(), cause);
        }
        return start(config, nvml, pluginInterceptors);
    }

    /** Starts with a given NVML binding (tests: a fake, or the simulated driver). */
    public static NodeAgent start(AgentConfig config, NvmlLibrary nvml, ServerInterceptor... pluginInterceptors)
            throws AgentStartException {
        requireShimLibrary(config.shim().hostLibrary());
        List<AutoCloseable> started = new ArrayList<>();
        try {
            GpuInventory inventory = new GpuInventory(nvml);
            inventory.initialise();
            started.add(nvml::nvmlShutdown);
            List<GpuDevice> gpus = TenancyServices.partition(inventory.discover(), config.tenancy().gpus());
            for (GpuDevice gpu : gpus) {
                log.info("event=gpu_found gpu={} index={} name=\"{}\" minor={} memory_bytes={} numa={}", gpu.uuid(),
                        gpu.index(), gpu.name(), gpu.minorNumber(), gpu.memoryBytes(), gpu.numaNode());
            }
            GpuHealthMonitor health = config.nvml().healthChecks()
                    ? new GpuHealthMonitor(nvml, gpus, config.nvml().recoveryDebounce(), config.nvml().ignoredXids(),
                            System::nanoTime)
                    : GpuHealthMonitor.disabled(gpus);
            started.add(health);

            AllocationLedger ledger = AllocationLedger.open(gpus, config.sharing(), config.directories().state(),
                    Clock.systemUTC());
            started.add(ledger);
            ledger.keepDisplacedFilesFor(config.kubelet().releaseGracePeriod());
            ContainerEdits edits = new ContainerEdits(ledger, config);
            edits.writePreloadFile();
            io.omai.agent.lifecycle.Loops loops = new io.omai.agent.lifecycle.Loops();
            QuotaEnforcement quotas = new QuotaEnforcement(ledger, nvml, config.sharing().computePeriodUs() * 1_000L,
                    config.audit().onTamper(), io.omai.agent.quota.audit.GpuProcessAudit.Killer.SIGKILL);
            quotas.start(loops);
            started.add(quotas);

            PodResourcesReconciler reconciler = new PodResourcesReconciler(config.directories().podResourcesSocket(),
                    config.resources().milliGpu(), ledger, config.kubelet().reconcileInterval(),
                    config.kubelet().releaseGracePeriod());

            // withdrawn GPUs (another plugin hands them out whole) are advertised Unhealthy
            GpuWithdrawals withdrawals = new GpuWithdrawals();
            DeviceListPublisher devices = new DeviceListPublisher(gpus, withdrawals.overlay(health.current()));
            health.addListener(changed -> devices.healthChanged(withdrawals.overlay(changed)));
            withdrawals.onChange(() -> devices.healthChanged(withdrawals.overlay(health.current())));
            started.add(devices::terminate);
            health.start();

            // one reservation book: the scheduler API fills it, the device plugin consumes it at Allocate
            SchedulerFacing scheduler = SchedulerFacing.start(config, ledger, health, withdrawals, pluginInterceptors);
            started.add(scheduler);
            TenancyServices tenancy = TenancyServices.start(config, gpus, ledger, scheduler.reservations(),
                    withdrawals, nvml);
            started.add(tenancy);
            quotas.reportTo(tenancy::report); // usage files found tampered: event + metric, as the NVML audit's

            Path socket = config.directories().devicePlugin().resolve(config.pluginSocketName());
            PluginSocketServer server = new PluginSocketServer(socket,
                    List.of(intercepted(new DevicePluginService(tenancy.gate(), edits, devices), pluginInterceptors)));
            server.ensureListening();
            started.add(server);

            KubeletRegistrar registrar = new KubeletRegistrar(config.directories().devicePlugin(),
                    config.resources().milliGpu(), server, devices::watchers, config.kubelet().registrationBackoffMax());
            devices.onStreamEnded(registrar::streamEnded);
            registrar.start();
            started.add(registrar);

            VfDevicePlugin vfPlugin = null;
            if (config.ib().enabled()) {
                try {
                    vfPlugin = startVfPlugin(config, ledger, pluginInterceptors);
                } catch (AgentStartException e) {
                    closeAll(reversed(started));
                    throw e;
                }
                started.add(vfPlugin);
            }

            reconciler.start(); // reconciles at once, then every interval
            started.add(reconciler);
            watchLoops(loops, config, health, registrar, reconciler);

            log.info("event=agent_started node={} resource={} gpus={} socket={} state={}", config.nodeName(),
                    config.resources().milliGpu(), gpus.size(), socket, config.directories().state());
            NodeAgent agent = new NodeAgent(config, nvml, health, ledger, quotas, scheduler, tenancy, devices,
                    server, registrar, reconciler, loops);
            agent.vfPlugin = vfPlugin;
            return agent;
        } catch (NvmlException e) {
            closeAll(reversed(started));
            throw new AgentStartException("cannot discover GPUs: " + e.getMessage(), e);
        } catch (IOException | RuntimeException e) {
            closeAll(reversed(started));
            throw new AgentStartException("cannot start: " + e, e);
        }
    }

    /**
     * The loops {@code /healthz} judges beside the supervised ones (reaper, compute control): each one counts
     * its passes and fails the probe when the count stops moving for far longer than one pass can take.
     */
    private static void watchLoops(io.omai.agent.lifecycle.Loops loops, AgentConfig config, GpuHealthMonitor health,
                                   KubeletRegistrar registrar, PodResourcesReconciler reconciler) {
        if (config.nvml().healthChecks()) {
            // a pass waits 500 ms for an event; a failing setup sleeps at most the debounce
            loops.watch("gpu-health", health::passes,
                    java.time.Duration.ofSeconds(30).plus(config.nvml().recoveryDebounce()));
        }
        // a pass waits up to 1 s, a Register call up to 5 s and a failure up to the back-off
        loops.watch("kubelet-registration", registrar::loopPasses,
                java.time.Duration.ofSeconds(30).plus(config.kubelet().registrationBackoffMax().multipliedBy(2)));
        loops.watch("pod-resources-reconcile", reconciler::passes,
                java.time.Duration.ofSeconds(60).plus(config.kubelet().reconcileInterval().multipliedBy(3)));
    }

    /** Every background loop of the agent, for {@code /healthz}: empty problem while each meets its deadline. */
    public io.omai.agent.lifecycle.Loops loops() {
        return loops;
    }

    /**
     * Every Allocate bind-mounts the shim from the host; without it kubelet would be handed a mount of a file that
     * does not exist and the container would fail to start (or run unenforced), so the agent does not start.
     */
    private static void requireShimLibrary(Path library) throws AgentStartException {
        String problem = !Files.exists(library) ? "does not exist"
                : !Files.isRegularFile(library) ? "is not a regular file"
                : !Files.isReadable(library) ? "is not readable" : null;
        if (problem != null) {
            throw new AgentStartException("shim.hostLibrary: " + library + " " + problem + "; expected the shim "
                    + "library (libomai-shim.so) on the host, installed by the DaemonSet's init container; every "
                    + "Allocate mounts it into the container", null);
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
    public io.omai.agent.tenancy.ReservationBook reservations() {
        return scheduler.reservations();
    }

    /** The scheduler API's TCP port, or -1 when it is disabled. */
    public int schedulerApiPort() {
        return scheduler.port();
    }

    /** GPU health as advertised to kubelet: the monitor's, with GPUs another plugin hands out withdrawn. */
    public java.util.Map<String, io.omai.agent.gpu.GpuHealth> advertisedHealth() {
        return tenancy.withdrawals().overlay(health.current());
    }

    /** GPUs withdrawn from sharing because kubelet also reports them as another plugin's, with the reason. */
    public java.util.Map<String, String> withdrawnGpus() {
        return tenancy.withdrawals().current();
    }

    /** Runs one cross-check with kubelet's PodResources for GPUs another plugin hands out (instead of waiting). */
    public void checkOtherPluginNow() {
        tenancy.checkOtherPlugin();
    }

    /** {@code listener} hears of every process the NVML audit catches (the metrics count them). */
    public void onAuditFinding(java.util.function.Consumer<io.omai.agent.quota.audit.AuditFinding> listener) {
        tenancy.onAuditFinding(listener);
    }

    /** Reports a finding as the NVML audit does: an event on its pod (else the node), then every listener. */
    public void reportFinding(io.omai.agent.quota.audit.AuditFinding finding) {
        tenancy.report(finding);
    }

    /** The compute controller granting GPU time to every allocation's shims. */
    public io.omai.agent.quota.compute.ComputeControlLoop computeLoop() {
        return quotas.computeLoop();
    }

    /** The reaper releasing dead processes' bytes and mapping live ones to host pids. */
    public io.omai.agent.quota.DeadProcessReaper reaper() {
        return quotas.reaper();
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

    /** The {@code omai.io/ib-vf} plugin, when {@code ib.enabled}. */
    public java.util.Optional<VfDevicePlugin> vfPlugin() {
        return java.util.Optional.ofNullable(vfPlugin);
    }

    /** The VF plugin over the host's sysfs and {@code ip}, preferring VFs near the newest milli-GPU allocation. */
    private static VfDevicePlugin startVfPlugin(AgentConfig config, AllocationLedger ledger,
                                                ServerInterceptor... pluginInterceptors) throws AgentStartException {
        return VfDevicePlugin.start(config, new io.omai.ibvf.kernel.FileSysfs(config.ib().sysfsRoot()),
                io.omai.ibvf.kernel.ProcessIpLink.system(),
                sysfs -> new RecentGpuAllocation(ledger, RecentGpuAllocation.NVIDIA_GPUS,
                        gpu -> sysfs.exists(io.omai.ibvf.kernel.SysfsLayout.pciDevice(gpu)), Clock.systemUTC(),
                        RecentGpuAllocation.WINDOW),
                pluginInterceptors);
    }

    /** Stops registration, reconciliation, the server and health checks; the ledger stays on disk. */
    @Override
    public void close() {
        if (vfPlugin != null) {
            vfPlugin.close();
        }
        closeAll(List.of(registrar, tenancy, scheduler, reconciler, devices::terminate, server, quotas, ledger,
                health, nvml::nvmlShutdown));
        log.info("event=agent_stopped node={}", config.nodeName());
    }

    /** Closes in the order given, logging (not throwing) failures so every resource gets its turn. */
    private static void closeAll(List<AutoCloseable> inStopOrder) {
        for (AutoCloseable resource : inStopOrder) {
            try {
                resource.close();
            } catch (Exception e) {
                log.warn("event=stop_failed error=\"{}\"", e.toString());
            }
        }
    }

    private static BindableService intercepted(BindableService service, ServerInterceptor... interceptors) {
        return () -> ServerInterceptors.intercept(service, interceptors);
    }

    private static List<AutoCloseable> reversed(List<AutoCloseable> startOrder) {
        List<AutoCloseable> stopOrder = new ArrayList<>(startOrder);
        Collections.reverse(stopOrder);
        return stopOrder;
    }
}
