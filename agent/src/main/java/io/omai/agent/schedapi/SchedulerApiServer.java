package io.omai.agent.schedapi;

import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.ServerInterceptors;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.omai.agent.schedapi.expr.DeviceExpressions;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.tenancy.ReservationBook;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The scheduler-facing gRPC server: {@code omai.scheduler.v1.NodeAgent}, gRPC health and server reflection
 * (so {@code grpcurl} works without proto files), and a sweeper that ends expired leases so watchers hear of
 * it. Takes a {@link ServerBuilder} so the daemon passes a TCP builder ({@link #tcp}) and tests an in-process one.
 *
 * <pre>{@code
 * var inventory = new StaticNodeInventory(snapshot);
 * var book = new ReservationBook(inventory::snapshot, AntiAffinityPolicy.GPU, Clock.systemUTC());
 * var server = new SchedulerApiServer(SchedulerApiServer.tcp(new InetSocketAddress("0.0.0.0", 7443), tls),
 *         inventory, book, new ClientPolicy.AllowList(Set.of("omai-scheduler"))).start();
 * }</pre>
 */
public final class SchedulerApiServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SchedulerApiServer.class);
    public static final String SERVICE_NAME = NodeAgentGrpc.SERVICE_NAME;
    static final int EXPRESSION_CACHE_SIZE = 256;
    private static final Duration SWEEP_PERIOD = Duration.ofMillis(250);
    private static final Duration SHUTDOWN_GRACE = Duration.ofSeconds(5);

    private final Server server;
    private final ReservationBook book;
    private final NodeStatePublisher publisher;
    private final HealthStatusManager health = new HealthStatusManager();
    private final ScheduledExecutorService sweeper;
    private final ClientPolicy clientPolicy;

    public SchedulerApiServer(
            ServerBuilder<?> serverBuilder, NodeInventory inventory, ReservationBook book, ClientPolicy clientPolicy) {
        this(serverBuilder, inventory, book, clientPolicy, "");
    }

    /** @param tenantLabel the pod label tenants are read from, published in the node state ("" = namespace) */
    public SchedulerApiServer(
            ServerBuilder<?> serverBuilder,
            NodeInventory inventory,
            ReservationBook book,
            ClientPolicy clientPolicy,
            String tenantLabel) {
        this.book = book;
        this.clientPolicy = clientPolicy;
        this.publisher = new NodeStatePublisher(inventory, book, tenantLabel);
        var service = new NodeAgentService(
                inventory, book, publisher, new RequestValidator(new DeviceExpressions(EXPRESSION_CACHE_SIZE)));
        this.server = serverBuilder
                .addService(ServerInterceptors.intercept(service, new ClientAuthorization(clientPolicy)))
                .addService(health.getHealthService())
                .addService(ProtoReflectionServiceV1.newInstance())
                .build();
        this.sweeper = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name("omai-lease-sweeper").factory());
    }

    /**
     * A TCP server builder: mutual TLS when {@code tls} is given, else plaintext (development only).
     */
    public static ServerBuilder<?> tcp(InetSocketAddress address, Optional<TlsSettings> tls) {
        return NettyServerBuilder.forAddress(
                address, tls.map(TlsSettings::serverCredentials).orElseGet(InsecureServerCredentials::create));
    }

    public SchedulerApiServer start() {
        try {
            server.start();
        } catch (IOException e) {
            throw new UncheckedIOException("scheduler API server could not start: " + e.getMessage(), e);
        }
        if (clientPolicy instanceof ClientPolicy.AnyClient) {
            log.warn("event=scheduler_api_reserve_open detail=\"scheduler API accepts Reserve/Release from any client "
                    + "that reaches the port (schedulerApi.reserveAuth none); any pod could hold the node's whole "
                    + "capacity: development only\"");
        }
        var _ = sweeper.scheduleWithFixedDelay(
                this::sweep, SWEEP_PERIOD.toMillis(), SWEEP_PERIOD.toMillis(), TimeUnit.MILLISECONDS);
        health.setStatus("", ServingStatus.SERVING);
        health.setStatus(SERVICE_NAME, ServingStatus.SERVING);
        log.info("scheduler API serving {} on {}", SERVICE_NAME, server.getListenSockets());
        return this;
    }

    private void sweep() {
        try {
            book.expireDue()
                    .forEach(expired -> log.info(
                            "reservation '{}' for pod {} expired unconsumed",
                            expired.idempotencyKey(),
                            expired.podUid()));
        } catch (RuntimeException e) {
            // a failed sweep must not cancel the schedule; expiry is still exact for readers
            log.warn("lease sweep failed", e);
        }
    }

    /** The bound TCP port, e.g. after binding port 0; -1 for transports without ports. */
    public int port() {
        return server.getPort();
    }

    public NodeStatePublisher publisher() {
        return publisher;
    }

    @Override
    public void close() {
        health.enterTerminalState();
        sweeper.shutdownNow();
        publisher.close();
        server.shutdown();
        try {
            if (!server.awaitTermination(SHUTDOWN_GRACE.toMillis(), TimeUnit.MILLISECONDS)) {
                server.shutdownNow();
            }
        } catch (InterruptedException e) {
            server.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }
}
