package io.omai.extender.config;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;

/**
 * Where the node agents are and how to talk to them.
 *
 * @param namespace namespace of the agents' headless Service
 * @param service the Service whose EndpointSlices (label {@code kubernetes.io/service-name}) list one endpoint per
 *     agent, with its node name
 * @param port the agents' scheduler API port (the EndpointSlice port of that number, or this number when the
 *     slice names none)
 * @param tokenFile the projected service-account token sent as {@code authorization: Bearer} on Reserve and
 *     Release; re-read when it changes. Empty: no token (agents that authorize by mTLS, or development)
 * @param tls empty: plaintext (development only)
 * @param fitDeadline how long filter waits for a Fit call to a node whose watch stream is down
 * @param reserveDeadline how long bind waits for Reserve and Release
 * @param leaseSeconds how long a reservation holds if kubelet never allocates (1..3600)
 * @param maxBackoff the longest wait between reconnects of a dropped watch stream
 */
public record AgentConnection(
        String namespace,
        String service,
        int port,
        Optional<Path> tokenFile,
        Optional<AgentTls> tls,
        Duration fitDeadline,
        Duration reserveDeadline,
        int leaseSeconds,
        Duration maxBackoff) {
    public static final String DEFAULT_NAMESPACE = "omai-system";
    public static final String DEFAULT_SERVICE = "omai-agent";
    public static final int DEFAULT_PORT = 9401;

    public AgentConnection {
        Objects.requireNonNull(namespace, "namespace");
        Objects.requireNonNull(service, "service");
        Objects.requireNonNull(tokenFile, "tokenFile");
        Objects.requireNonNull(tls, "tls");
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("agent port " + port + " is outside 1..65535");
        }
        if (leaseSeconds < 1 || leaseSeconds > 3600) {
            throw new IllegalArgumentException("lease " + leaseSeconds + " s is outside 1..3600 s");
        }
        for (var d : new Duration[] {fitDeadline, reserveDeadline, maxBackoff}) {
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException("deadline/backoff " + d + " must be positive");
            }
        }
    }

    /** The defaults for a Service {@code service} in {@code namespace}, plaintext, no token. */
    public static AgentConnection of(String namespace, String service, int port) {
        return new AgentConnection(
                namespace,
                service,
                port,
                Optional.empty(),
                Optional.empty(),
                Duration.ofMillis(300),
                Duration.ofSeconds(2),
                60,
                Duration.ofSeconds(10));
    }

    public AgentConnection withTokenFile(Path file) {
        return new AgentConnection(
                namespace,
                service,
                port,
                Optional.of(file),
                tls,
                fitDeadline,
                reserveDeadline,
                leaseSeconds,
                maxBackoff);
    }

    public AgentConnection withTls(AgentTls agentTls) {
        return new AgentConnection(
                namespace,
                service,
                port,
                tokenFile,
                Optional.of(agentTls),
                fitDeadline,
                reserveDeadline,
                leaseSeconds,
                maxBackoff);
    }

    public AgentConnection withDeadlines(Duration fit, Duration reserve, int lease, Duration backoff) {
        return new AgentConnection(namespace, service, port, tokenFile, tls, fit, reserve, lease, backoff);
    }
}
