package io.omai.agent.dra;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.deviceplugin.ContainerEdits;
import io.omai.agent.deviceplugin.PluginSocketServer;
import io.omai.agent.deviceplugin.VfClaims;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.lifecycle.Closer;
import io.omai.agent.lifecycle.SupervisedLoop;
import io.omai.agent.tenancy.ClaimAdmission;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.TenantIdentity;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent as a DRA driver ({@code dra.enabled}): the registration socket in kubelet's plugin watcher directory,
 * the DRA service (v1 and v1beta1) on {@code <pluginDir>/dra.sock}, the node's ResourceSlice, and the "one GPU, one
 * path" rule towards the device plugin (GPUs holding DRA claims are withdrawn from it; GPUs it holds are tainted
 * in the slice). Both sockets are re-created when they disappear (kubelet deletes plugin sockets when it restarts)
 * and the registration socket also after kubelet refuses the registration.
 */
public final class DraDriver implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DraDriver.class);
    private static final Duration SOCKET_CHECK = Duration.ofSeconds(1);

    private final PluginSocketServer registrationServer;
    private final PluginSocketServer serviceServer;
    private final RegistrationService registration;
    private final SlicePublisher slices;
    private final AllocationLedger ledger;
    private final GpuWithdrawals withdrawals;
    private final Closer started = new Closer("dra");
    private SupervisedLoop sockets;

    private DraDriver(
            AgentConfig config,
            AllocationLedger ledger,
            ClaimAdmission admission,
            ContainerEdits edits,
            Supplier<Map<String, GpuHealth>> health,
            GpuWithdrawals withdrawals,
            KubernetesClient client,
            TenantIdentity tenants,
            DevicePlaces places,
            Optional<VfClaims> vfs) {
        AgentConfig.Dra dra = config.dra();
        this.ledger = ledger;
        this.withdrawals = withdrawals;
        this.slices = new SlicePublisher(config, client, ledger, health, withdrawals, admission.policy(), places, vfs);
        ClaimPreparer preparer =
                new ClaimPreparer(config, ledger, admission, edits, client, tenants, health, vfs, slices.vfPoolName());
        DraServiceV1 v1 = new DraServiceV1(new DraService(preparer));
        this.serviceServer = new PluginSocketServer(dra.serviceSocket(), List.of(v1, new DraServiceV1beta1(v1)));
        this.registration = new RegistrationService(dra.driverName(), dra.serviceSocket());
        this.registrationServer = new PluginSocketServer(
                dra.pluginsRegistryDir().resolve(dra.registrationSocketName()), List.of(registration));
    }

    /**
     * Starts the driver: withdraws GPUs holding DRA claims (from the checkpoint) from the device plugin, publishes
     * the slice, listens on the service socket, then on the registration socket (kubelet dials the service once
     * registered).
     */
    public static DraDriver start(
            AgentConfig config,
            AllocationLedger ledger,
            ClaimAdmission admission,
            ContainerEdits edits,
            Supplier<Map<String, GpuHealth>> health,
            GpuWithdrawals withdrawals,
            KubernetesClient client,
            TenantIdentity tenants)
            throws IOException {
        return start(
                config,
                ledger,
                admission,
                edits,
                health,
                withdrawals,
                client,
                tenants,
                DevicePlaces.UNKNOWN,
                Optional.empty());
    }

    /**
     * Starts the driver with the GPUs' PCIe places and, when the VF plugin runs, its VFs as a pool of their own
     * ({@code <node>-ib-vf}) handed out through the plugin's bookkeeper.
     */
    public static DraDriver start(
            AgentConfig config,
            AllocationLedger ledger,
            ClaimAdmission admission,
            ContainerEdits edits,
            Supplier<Map<String, GpuHealth>> health,
            GpuWithdrawals withdrawals,
            KubernetesClient client,
            TenantIdentity tenants,
            DevicePlaces places,
            Optional<VfClaims> vfs)
            throws IOException {
        DraDriver driver =
                new DraDriver(config, ledger, admission, edits, health, withdrawals, client, tenants, places, vfs);
        try {
            // VF health, the device plugin's VFs and claims' VFs show in the VF slice
            vfs.ifPresent(claims -> claims.onChange(driver.slices::changed));
            driver.started.add("dra-slices", driver.slices);
            driver.withdrawDraGpus();
            AllocationLedger.Subscription ledgerChanges = ledger.onChange(() -> {
                driver.withdrawDraGpus();
                driver.slices.changed();
            });
            driver.started.add("dra-ledger-subscription", ledgerChanges);
            driver.started.add("dra-withdrawals-subscription", withdrawals.onChange(driver.slices::changed));
            driver.slices.changed();
            driver.started.add("dra-service-server", driver.serviceServer);
            driver.serviceServer.ensureListening();
            driver.started.add("dra-registration-server", driver.registrationServer);
            driver.registrationServer.ensureListening();
            driver.sockets = driver.started.add(
                    "dra-sockets",
                    SupervisedLoop.start(
                            "dra-sockets", SOCKET_CHECK, SOCKET_CHECK, Duration.ofSeconds(60), driver::checkSockets));
            log.info(
                    "event=dra_started driver={} registration={} endpoint={} cdi={} slice={}",
                    config.dra().driverName(),
                    driver.registrationServer.socket(),
                    driver.serviceServer.socket(),
                    config.dra().cdiDir(),
                    driver.slices.sliceName());
            return driver;
        } catch (IOException | RuntimeException e) {
            driver.close();
            throw e;
        }
    }

    /** GPU health changed: the slice's taints follow. */
    public void healthChanged() {
        slices.changed();
    }

    /** Writes the slice now if it changed; the pool's generation after it (tests, {@code omai inspect}). */
    public long publishSlicesNow() {
        return slices.publishNow();
    }

    public Path registrationSocket() {
        return registrationServer.socket();
    }

    public Path serviceSocket() {
        return serviceServer.socket();
    }

    /** Whether kubelet's last word on the registration was success. */
    public boolean registered() {
        return registration.registered();
    }

    /** The socket check loop, for {@code /healthz}. */
    public SupervisedLoop loop() {
        return sockets;
    }

    /** Re-creates a socket that is gone, and the registration socket after kubelet refused it. */
    void checkSockets() {
        try {
            serviceServer.ensureListening();
            if (registration.takeRefusal()) {
                registrationServer.close();
            }
            registrationServer.ensureListening();
        } catch (IOException e) {
            log.warn("event=dra_socket_failed error=\"{}\"", e.toString());
        }
    }

    /** GPUs holding DRA claims are withdrawn from the device plugin: one GPU, one path. */
    private void withdrawDraGpus() {
        Map<String, String> held = new TreeMap<>();
        for (Allocation allocation : ledger.allocations()) {
            if (allocation.claim().isDra()) {
                for (String uuid : allocation.gpuUuids()) {
                    held.merge(
                            uuid,
                            "holds DRA claim " + allocation.claim().draClaimUid(),
                            (a, b) -> a + ", " + b.substring(b.lastIndexOf(' ') + 1));
                }
            }
        }
        withdrawals.replace(GpuWithdrawals.DRA, held);
    }

    @Override
    public void close() {
        started.close();
    }
}
