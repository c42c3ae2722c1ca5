package io.omai.agent.metrics;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.omai.agent.config.AgentConfig;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves {@code /metrics} (Prometheus text format 0.0.4), {@code /healthz} and {@code /readyz} over plain HTTP
 * with the JDK's server. Probes answer 200 {@code ok} or 503 with the reason on one line. Requests run on virtual
 * threads, so a slow scrape never holds up a probe.
 */
public final class MetricsServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(MetricsServer.class);
    static final String PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";
    private static final String PLAIN_TEXT = "text/plain; charset=utf-8";

    private final HttpServer server;
    private final ExecutorService executor;

    private MetricsServer(HttpServer server, ExecutorService executor) {
        this.server = server;
        this.executor = executor;
    }

    /**
     * Binds and starts serving.
     *
     * @throws UncheckedIOException naming the address when it cannot be bound (port in use, address not local)
     */
    public static MetricsServer start(AgentConfig.Metrics config, AgentMetrics metrics) {
        return start(
                new InetSocketAddress(InetAddress.ofLiteral(config.address()), config.port()),
                metrics::scrape,
                metrics.health());
    }

    /** Binds {@code address} (port 0: any free port, see {@link #port()}) and starts serving. */
    public static MetricsServer start(InetSocketAddress address, Supplier<String> scrape, HealthChecks health) {
        HttpServer server;
        try {
            server = HttpServer.create(address, 16);
        } catch (IOException e) {
            throw new UncheckedIOException(
                    "cannot serve metrics on " + address + " (metrics.address/metrics.port): " + e.getMessage(), e);
        }
        ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
        server.setExecutor(executor);
        server.createContext(
                "/metrics", exchange -> respond(exchange, () -> new Answer(200, PROMETHEUS_TEXT, scrape.get())));
        server.createContext("/healthz", exchange -> respond(exchange, () -> probe(health.livenessProblem())));
        server.createContext("/readyz", exchange -> respond(exchange, () -> probe(health.readinessProblem())));
        server.createContext(
                "/",
                exchange -> respond(
                        exchange, () -> new Answer(404, PLAIN_TEXT, "not found; try /metrics, /healthz or /readyz\n")));
        server.start();
        log.info(
                "event=metrics_listening address={} port={}",
                address.getAddress().getHostAddress(),
                server.getAddress().getPort());
        return new MetricsServer(server, executor);
    }

    /** The bound port. */
    public int port() {
        return server.getAddress().getPort();
    }

    private record Answer(int status, String contentType, String body) {}

    private static Answer probe(Optional<String> problem) {
        return problem.map(p -> new Answer(503, PLAIN_TEXT, p + "\n"))
                .orElseGet(() -> new Answer(200, PLAIN_TEXT, "ok\n"));
    }

    private static void respond(HttpExchange exchange, Supplier<Answer> handler) throws IOException {
        try (exchange) {
            String method = exchange.getRequestMethod();
            boolean head = method.equals("HEAD");
            Answer answer;
            if (!head && !method.equals("GET")) {
                exchange.getResponseHeaders().set("Allow", "GET, HEAD");
                answer = new Answer(405, PLAIN_TEXT, method + " is not allowed; use GET\n");
            } else if (!exchange.getRequestURI()
                            .getPath()
                            .equals(exchange.getHttpContext().getPath())
                    && !exchange.getHttpContext().getPath().equals("/")) {
                answer = new Answer(404, PLAIN_TEXT, "not found; try /metrics, /healthz or /readyz\n");
            } else {
                try {
                    answer = handler.get();
                } catch (RuntimeException e) {
                    log.error(
                            "event=metrics_request_failed path={} error=\"{}\"",
                            exchange.getRequestURI(),
                            e.toString(),
                            e);
                    answer = new Answer(500, PLAIN_TEXT, "internal error: " + e + "\n");
                }
            }
            byte[] body = answer.body().getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", answer.contentType());
            exchange.getResponseHeaders().set("Cache-Control", "no-store");
            if (head) {
                exchange.sendResponseHeaders(answer.status(), -1);
                return;
            }
            exchange.sendResponseHeaders(answer.status(), body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        }
    }

    /** Stops accepting, lets requests in flight finish for up to a second. */
    @Override
    public void close() {
        server.stop(1);
        executor.shutdownNow();
    }
}
