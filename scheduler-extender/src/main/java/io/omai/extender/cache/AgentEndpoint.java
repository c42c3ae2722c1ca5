package io.omai.extender.cache;

import java.util.Objects;

/** Where one node's agent answers: from an EndpointSlice endpoint of the agents' headless Service. */
public record AgentEndpoint(String nodeName, String host, int port) {
    public AgentEndpoint {
        Objects.requireNonNull(nodeName, "nodeName");
        Objects.requireNonNull(host, "host");
    }

    /** {@code host:port}, bracketed for IPv6. */
    public String target() {
        return (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
    }
}
