package io.omai.agent.node;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.grpc.ServerBuilder;
import io.grpc.ServerInterceptor;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.deviceplugin.RecentGpuAllocation;
import io.omai.agent.deviceplugin.VfDevicePlugin;
import io.omai.agent.gpu.GpuHealthMonitor;
import io.omai.agent.kube.KubeTokenReviews;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.schedapi.CachedCallerReview;
import io.omai.agent.schedapi.CallerReview;
import io.omai.agent.schedapi.ClientPolicy;
import io.omai.agent.schedapi.DeviceAttributeOverlay;
import io.omai.agent.schedapi.LedgerNodeInventory;
import io.omai.agent.schedapi.PciePlace;
import io.omai.agent.schedapi.SchedulerApiServer;
import io.omai.agent.schedapi.TlsSettings;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.LedgerNodeCapacity;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.ibvf.kernel.FileSysfs;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What schedulers talk to: the node state read from the ledger, the reservation book (shared with the device
 * plugin, which consumes reservations at Allocate), and the scheduler API server when the configuration
 * enables it.
 */
final class SchedulerFacing implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SchedulerFacing.class);
    // distinct tokens a node sees are a handful of schedulers; the bound only stops a flood of junk tokens
    private static final int TOKEN_CACHE_CAPACITY = 1024;

    private final LedgerNodeInventory inventory;
    private final ReservationBook reservations;
    private final SchedulerApiServer server; // null when disabled
    private final AtomicReference<VfStates> vfs;
    private final AtomicReference<CallerReview> tokenReviews;

    private SchedulerFacing(
            LedgerNodeInventory inventory,
            ReservationBook reservations,
            SchedulerApiServer server,
            AtomicReference<VfStates> vfs,
            AtomicReference<CallerReview> tokenReviews) {
        this.inventory = inventory;
        this.reservations = reservations;
        this.server = server;
        this.vfs = vfs;
        this.tokenReviews = tokenReviews;
    }

    static SchedulerFacing start(
            AgentConfig config,
            AllocationLedger ledger,
            GpuHealthMonitor health,
            GpuWithdrawals withdrawals,
            ServerInterceptor... interceptors) {
        AgentConfig.SchedulerApi api = config.schedulerApi();
        AtomicReference<VfStates> vfs = new AtomicReference<>();
        Map<String, PciePlace> places = PcieLocations.ofGpus(
                ledger.gpus(),
                RecentGpuAllocation.NVIDIA_GPUS,
                new FileSysfs(config.ib().sysfsRoot()));
        LedgerNodeInventory inventory = new LedgerNodeInventory(
                config.nodeName(),
                ledger,
                () -> withdrawals.overlay(health.current()),
                overlay(api.deviceLabels()),
                () -> Optional.ofNullable(vfs.get()).map(VfStates::hcas).orElse(List.of()),
                LedgerNodeCapacity::tenantOf,
                () -> Optional.ofNullable(vfs.get()).map(VfStates::holdings).orElse(List.of()),
                uuid -> places.getOrDefault(uuid, PciePlace.UNKNOWN));
        health.addListener(changed -> inventory.changed());
        withdrawals.onChange(inventory::changed);
        // the book reads the ledger live (one capacity model with the admission gate), not the published snapshot
        ReservationBook reservations =
                new ReservationBook(inventory::live, TenancyServices.policy(config), Clock.systemUTC());
        AtomicReference<CallerReview> tokenReviews = new AtomicReference<>(token -> {
            throw new CallerReview.Unavailable(
                    "this agent has no Kubernetes API client (tenancy.kubernetesApi) to review tokens with", null);
        });
        if (!api.enabled()) {
            return new SchedulerFacing(inventory, reservations, null, vfs, tokenReviews);
        }
        Optional<TlsSettings> tls = Optional.ofNullable(api.tls())
                .map(t -> new TlsSettings(t.certificateChain(), t.privateKey(), t.clientCa()));
        ServerBuilder<?> builder =
                SchedulerApiServer.tcp(new InetSocketAddress(InetAddress.ofLiteral(api.address()), api.port()), tls);
        for (ServerInterceptor interceptor : interceptors) {
            builder.intercept(interceptor);
        }
        ClientPolicy clients = switch (api.reserveAuth()) {
            case NONE -> new ClientPolicy.AnyClient();
            case MTLS -> new ClientPolicy.AllowList(api.allowedClients());
            case TOKEN_REVIEW ->
                new ClientPolicy.Tokens(
                        new CachedCallerReview(
                                token -> tokenReviews.get().review(token),
                                api.tokenCacheTtl(),
                                TOKEN_CACHE_CAPACITY,
                                Clock.systemUTC()),
                        api.reserveCallers(),
                        api.tokenAudience(),
                        tls.isPresent() ? api.allowedClients() : java.util.Set.of());
        };
        log.info(
                "event=scheduler_api_reserve_auth mode={} callers={} audience={} tls={}",
                api.reserveAuth(),
                api.reserveCallers(),
                api.tokenAudience(),
                tls.isPresent());
        SchedulerApiServer server = new SchedulerApiServer(
                        builder,
                        inventory,
                        reservations,
                        clients,
                        config.tenancy().tenantLabel())
                .start();
        return new SchedulerFacing(inventory, reservations, server, vfs, tokenReviews);
    }

    /** From now on the node state shows the VF plugin's HCAs and VFs, rebuilt whenever they change. */
    void showVfs(VfDevicePlugin plugin) {
        vfs.set(new VfStates(plugin));
        plugin.onChange(inventory::changed);
        inventory.changed();
    }

    /** Reserve/Release tokens are reviewed through {@code client} from now on (before: refused as UNAVAILABLE). */
    void reviewTokensWith(KubernetesClient client, AgentConfig config) {
        tokenReviews.set(
                callerReview(new KubeTokenReviews(client, config.schedulerApi().tokenAudience())));
    }

    /** The API server's TokenReview as the scheduler API's {@link CallerReview}; a failed call is UNAVAILABLE. */
    static CallerReview callerReview(KubeTokenReviews reviews) {
        return token -> {
            try {
                KubeTokenReviews.Result result = reviews.review(token);
                return result.authenticated()
                        ? new CallerReview.Verdict.Authenticated(result.user(), java.util.Set.copyOf(result.groups()))
                        : new CallerReview.Verdict.Rejected(result.reason());
            } catch (KubernetesClientException e) {
                throw new CallerReview.Unavailable("TokenReview failed: " + e.getMessage(), e);
            }
        };
    }

    private static DeviceAttributeOverlay overlay(List<AgentConfig.DeviceLabels> labels) {
        return new DeviceAttributeOverlay(labels.stream()
                .map(l -> new DeviceAttributeOverlay.Rule(
                        switch (l.selectorKind()) {
                            case "all" -> new DeviceAttributeOverlay.Selector.All();
                            case "uuid" -> new DeviceAttributeOverlay.Selector.ByUuid(l.selectorValue());
                            case "index" ->
                                new DeviceAttributeOverlay.Selector.ByIndex(Integer.parseInt(l.selectorValue()));
                            case "model" -> new DeviceAttributeOverlay.Selector.ByModel(l.selectorValue());
                            default -> throw new IllegalArgumentException("device label selector " + l.selectorKind());
                        },
                        l.attributes(),
                        l.tags()))
                .toList());
    }

    LedgerNodeInventory inventory() {
        return inventory;
    }

    ReservationBook reservations() {
        return reservations;
    }

    int port() {
        return server == null ? -1 : server.port();
    }

    @Override
    public void close() {
        if (server != null) {
            server.close();
        }
        inventory.close();
    }
}
