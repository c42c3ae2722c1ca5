package io.omai.extender.cache;

import io.grpc.ManagedChannel;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.extender.config.AgentTls;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.function.BiConsumer;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Every known node's agent link, by node name. Filter and prioritize read it without a network call; the
 * {@link AgentDirectory} keeps the set of links equal to the agents' EndpointSlices.
 */
public final class NodeStateCache implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NodeStateCache.class);

    private final Map<String, NodeLink> links = new ConcurrentHashMap<>();
    private final CopyOnWriteArrayList<BiConsumer<String, NodeState>> listeners = new CopyOnWriteArrayList<>();
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("omai-extender-reconnect").factory());
    private final Function<AgentEndpoint, ManagedChannel> channels;
    private final Duration maxBackoff;

    public NodeStateCache(Function<AgentEndpoint, ManagedChannel> channels, Duration maxBackoff) {
        this.channels = Objects.requireNonNull(channels, "channels");
        this.maxBackoff = maxBackoff;
    }

    /** Channels over TCP to each endpoint, TLS when {@code tls} is given. */
    public static NodeStateCache overTcp(Optional<AgentTls> tls, Duration maxBackoff) {
        return new NodeStateCache(endpoint -> NodeLink.channel(endpoint, tls), maxBackoff);
    }

    public Optional<NodeLink> link(String nodeName) {
        return Optional.ofNullable(links.get(nodeName));
    }

    public Set<String> nodeNames() {
        return Set.copyOf(links.keySet());
    }

    /** Called with the node name and state after every state an agent sends. */
    public void onState(BiConsumer<String, NodeState> listener) {
        listeners.add(listener);
    }

    /**
     * Makes the links equal to {@code endpoints} (node name to endpoint): opens new ones, closes those gone and
     * reopens those whose address changed (the agent pod was replaced).
     */
    public void reconcile(Map<String, AgentEndpoint> endpoints) {
        for (var entry : endpoints.entrySet()) {
            NodeLink current = links.get(entry.getKey());
            if (current == null || !current.endpoint().equals(entry.getValue())) {
                NodeLink fresh = new NodeLink(
                        entry.getValue(), channels.apply(entry.getValue()), timer, maxBackoff, this::notifyState);
                NodeLink replaced = links.put(entry.getKey(), fresh);
                if (replaced != null) {
                    replaced.close();
                }
                log.info(
                        "event=node_agent_discovered node={} agent={}",
                        entry.getKey(),
                        entry.getValue().target());
                fresh.start();
            }
        }
        for (String node : Set.copyOf(links.keySet())) {
            if (!endpoints.containsKey(node)) {
                NodeLink gone = links.remove(node);
                if (gone != null) {
                    log.info("event=node_agent_gone node={}", node);
                    gone.close();
                }
            }
        }
    }

    private void notifyState(NodeLink link, NodeState state) {
        listeners.forEach(listener -> listener.accept(link.nodeName(), state));
    }

    @Override
    public void close() {
        timer.shutdownNow();
        links.values().forEach(NodeLink::close);
        links.clear();
    }
}
