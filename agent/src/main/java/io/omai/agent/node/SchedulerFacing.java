package io.omai.agent.node;

import io.grpc.ServerBuilder;
import io.grpc.ServerInterceptor;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.gpu.GpuHealthMonitor;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.schedapi.ClientPolicy;
import io.omai.agent.schedapi.DeviceAttributeOverlay;
import io.omai.agent.schedapi.LedgerNodeInventory;
import io.omai.agent.schedapi.SchedulerApiServer;
import io.omai.agent.schedapi.TlsSettings;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.LedgerNodeCapacity;
import io.omai.agent.tenancy.ReservationBook;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.util.List;
import java.util.Optional;

/**
 * What schedulers talk to: the node state read from the ledger, the reservation book (shared with the device
 * plugin, which consumes reservations at Allocate), and the scheduler API server when the configuration
 * enables it.
 */
final class SchedulerFacing implements AutoCloseable {
    private final LedgerNodeInventory inventory;
    private final ReservationBook reservations;
    private final SchedulerApiServer server; // null when disabled

    private SchedulerFacing(LedgerNodeInventory inventory, ReservationBook reservations, SchedulerApiServer server) {
        this.inventory = inventory;
        this.reservations = reservations;
        this.server = server;
    }

    static SchedulerFacing start(
            AgentConfig config,
            AllocationLedger ledger,
            GpuHealthMonitor health,
            GpuWithdrawals withdrawals,
            ServerInterceptor... interceptors) {
        AgentConfig.SchedulerApi api = config.schedulerApi();
        LedgerNodeInventory inventory = new LedgerNodeInventory(
                config.nodeName(),
                ledger,
                () -> withdrawals.overlay(health.current()),
                overlay(api.deviceLabels()),
                List::of,
                LedgerNodeCapacity::tenantOf);
        health.addListener(changed -> inventory.changed());
        withdrawals.onChange(inventory::changed);
        // the book reads the ledger live (one capacity model with the admission gate), not the published snapshot
        ReservationBook reservations =
                new ReservationBook(inventory::live, TenancyServices.policy(config), Clock.systemUTC());
        if (!api.enabled()) {
            return new SchedulerFacing(inventory, reservations, null);
        }
        Optional<TlsSettings> tls = Optional.ofNullable(api.tls())
                .map(t -> new TlsSettings(t.certificateChain(), t.privateKey(), t.clientCa()));
        ServerBuilder<?> builder =
                SchedulerApiServer.tcp(new InetSocketAddress(InetAddress.ofLiteral(api.address()), api.port()), tls);
        for (ServerInterceptor interceptor : interceptors) {
            builder.intercept(interceptor);
        }
        ClientPolicy clients =
                tls.isPresent() ? new ClientPolicy.AllowList(api.allowedClients()) : new ClientPolicy.AnyClient();
        SchedulerApiServer server = new SchedulerApiServer(builder, inventory, reservations, clients).start();
        return new SchedulerFacing(inventory, reservations, server);
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
