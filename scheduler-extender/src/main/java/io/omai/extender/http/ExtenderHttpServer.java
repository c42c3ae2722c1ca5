package io.omai.extender.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The extender's HTTP endpoint: {@code POST /filter}, {@code /prioritize}, {@code /bind} (kube-scheduler appends
 * the verb to urlPrefix), {@code GET /healthz} and {@code /readyz}.
 *
 * <p>The JDK's own {@code com.sun.net.httpserver} (module jdk.httpserver) on virtual threads, one per request: it
 * ships and is patched with the JDK, adds no dependency, and the extender serves four small JSON routes to one
 * client (kube-scheduler), for which a framework would add only surface.
 */
public final class ExtenderHttpServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ExtenderHttpServer.class);
    /** A NodeList of 5 000 full Node objects is about 50 MiB; more than this is not kube-scheduler. */
    static final int MAX_BODY_BYTES = 128 * 1024 * 1024;

    static final ObjectMapper JSON =
            new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    private final HttpServer server;
    private final ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();

    public ExtenderHttpServer(InetSocketAddress address, ExtenderRoutes routes, BooleanSupplier ready) {
        try {
            this.server = HttpServer.create(address, 0);
        } catch (IOException e) {
            throw new UncheckedIOException(
                    "extender HTTP server cannot listen on " + address + ": " + e.getMessage(), e);
        }
        server.setExecutor(executor);
        server.createContext(
                "/" + ExtenderRoutes.FILTER_VERB,
                exchange -> post(
                        exchange,
                        body -> JSON.writeValueAsBytes(
                                routes.filter(JSON.readValue(body, Protocol.ExtenderArgs.class))),
                        "ExtenderArgs"));
        server.createContext(
                "/" + ExtenderRoutes.PRIORITIZE_VERB,
                exchange -> post(
                        exchange,
                        body -> JSON.writeValueAsBytes(
                                routes.prioritize(JSON.readValue(body, Protocol.ExtenderArgs.class))),
                        "ExtenderArgs"));
        server.createContext(
                "/" + ExtenderRoutes.BIND_VERB,
                exchange -> post(
                        exchange,
                        body -> JSON.writeValueAsBytes(
                                routes.bind(JSON.readValue(body, Protocol.ExtenderBindingArgs.class))),
                        "ExtenderBindingArgs"));
        server.createContext("/healthz", exchange -> respond(exchange, 200, "ok\n", "text/plain"));
        server.createContext(
                "/readyz",
                exchange -> respond(
                        exchange,
                        ready.getAsBoolean() ? 200 : 503,
                        ready.getAsBoolean() ? "ready\n" : "agent discovery has not synced yet\n",
                        "text/plain"));
    }

    public ExtenderHttpServer start() {
        server.start();
        log.info("event=extender_http_listening address={}", server.getAddress());
        return this;
    }

    public int port() {
        return server.getAddress().getPort();
    }

    @FunctionalInterface
    private interface Handler {
        byte[] handle(byte[] body) throws IOException, ExtenderRoutes.BadRequest;
    }

    private static void post(HttpExchange exchange, Handler handler, String expected) throws IOException {
        try (exchange) {
            if (!"POST".equals(exchange.getRequestMethod())) {
                exchange.getResponseHeaders().set("Allow", "POST");
                respond(
                        exchange,
                        405,
                        exchange.getRequestMethod() + " is not allowed; POST a JSON " + expected + "\n",
                        "text/plain");
                return;
            }
            byte[] body = readBody(exchange.getRequestBody());
            if (body == null) {
                respond(exchange, 413, "request body exceeds " + MAX_BODY_BYTES + " bytes\n", "text/plain");
                return;
            }
            byte[] answer;
            try {
                answer = handler.handle(body);
            } catch (JsonProcessingException e) {
                respond(
                        exchange,
                        400,
                        "request body is not a JSON " + expected + " as kube-scheduler sends it: "
                                + e.getOriginalMessage() + "\n",
                        "text/plain");
                return;
            } catch (ExtenderRoutes.BadRequest e) {
                respond(exchange, 400, e.getMessage() + "\n", "text/plain");
                return;
            } catch (RuntimeException e) {
                log.warn(
                        "event=extender_request_failed path={} error=\"{}\"",
                        exchange.getRequestURI(),
                        e.toString(),
                        e);
                respond(exchange, 500, "internal error: " + e + "\n", "text/plain");
                return;
            }
            exchange.getResponseHeaders().set("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, answer.length);
            exchange.getResponseBody().write(answer);
        }
    }

    private static byte[] readBody(InputStream in) throws IOException {
        byte[] body = in.readNBytes(MAX_BODY_BYTES + 1);
        return body.length > MAX_BODY_BYTES ? null : body;
    }

    private static void respond(HttpExchange exchange, int status, String text, String type) throws IOException {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", type + "; charset=utf-8");
        exchange.sendResponseHeaders(status, bytes.length);
        exchange.getResponseBody().write(bytes);
        exchange.close();
    }

    @Override
    public void close() {
        server.stop(0);
        executor.shutdownNow();
    }
}
