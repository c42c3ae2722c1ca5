package io.omai.extender.cache;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.grpc.ChannelCredentials;
import io.grpc.ConnectivityState;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.TlsChannelCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.schedapi.v1.WatchNodeStateRequest;
import io.omai.extender.config.AgentTls;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One node's agent: a channel to it and one {@code WatchNodeState} stream that keeps {@link #latest()} current.
 * After a drop the stream is reopened with back-off, resuming from the generation and incarnation last seen, so
 * the agent sends nothing it already sent and nothing is missed.
 */
public final class NodeLink implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NodeLink.class);
    private static final Duration FIRST_BACKOFF = Duration.ofMillis(100);

    private final AgentEndpoint endpoint;
    private final ManagedChannel channel;
    private final ScheduledExecutorService timer;
    private final Duration maxBackoff;
    private final BiConsumer<NodeLink, NodeState> onState;

    private volatile Optional<CachedNode> latest = Optional.empty();
    private volatile boolean streamOpen;
    private volatile String lastFailure = "not connected yet";

    @GuardedBy("this")
    private Duration backoff = FIRST_BACKOFF;

    @GuardedBy("this")
    private boolean closed;

    @GuardedBy("this")
    private ClientCallStreamObserver<WatchNodeStateRequest> call;

    NodeLink(
            AgentEndpoint endpoint,
            ManagedChannel channel,
            ScheduledExecutorService timer,
            Duration maxBackoff,
            BiConsumer<NodeLink, NodeState> onState) {
        this.endpoint = endpoint;
        this.channel = channel;
        this.timer = timer;
        this.maxBackoff = maxBackoff;
        this.onState = onState;
    }

    /** A channel to {@code endpoint}: TLS (mutual when a certificate is given) or plaintext. */
    static ManagedChannel channel(AgentEndpoint endpoint, Optional<AgentTls> tls) {
        ChannelCredentials credentials;
        if (tls.isPresent()) {
            try {
                var builder = TlsChannelCredentials.newBuilder()
                        .trustManager(tls.get().caFile().toFile());
                if (tls.get().certFile().isPresent()) {
                    builder.keyManager(
                            tls.get().certFile().get().toFile(),
                            tls.get().keyFile().orElseThrow().toFile());
                }
                credentials = builder.build();
            } catch (IOException e) {
                throw new UncheckedIOException("agent TLS files could not be read: " + e.getMessage(), e);
            }
        } else {
            credentials = InsecureChannelCredentials.create();
        }
        return NettyChannelBuilder.forAddress(endpoint.host(), endpoint.port(), credentials)
                .build();
    }

    public String nodeName() {
        return endpoint.nodeName();
    }

    public AgentEndpoint endpoint() {
        return endpoint;
    }

    /** The last state the agent sent, whether or not the stream is up now. */
    public Optional<CachedNode> latest() {
        return latest;
    }

    /**
     * Whether {@link #latest()} can be trusted as current: a state was received, the stream has not failed since,
     * and the connection is up (a dead agent's connection is no longer READY even before the stream notices).
     */
    public boolean live() {
        return streamOpen && latest.isPresent() && channel.getState(false) == ConnectivityState.READY;
    }

    /** Why the stream is not live, for failure reasons. */
    public String lastFailure() {
        return lastFailure;
    }

    public NodeAgentGrpc.NodeAgentBlockingStub blocking() {
        return NodeAgentGrpc.newBlockingStub(channel);
    }

    public NodeAgentGrpc.NodeAgentFutureStub futures() {
        return NodeAgentGrpc.newFutureStub(channel);
    }

    void start() {
        openStream();
    }

    private void openStream() {
        var request = WatchNodeStateRequest.newBuilder();
        latest.ifPresent(known -> request.setAfterGeneration(known.state().getGeneration())
                .setIncarnation(known.state().getIncarnation()));
        synchronized (this) {
            if (closed) {
                return;
            }
            NodeAgentGrpc.newStub(channel).watchNodeState(request.build(), new Watcher());
        }
    }

    private final class Watcher implements ClientResponseObserver<WatchNodeStateRequest, NodeState> {
        @Override
        public void beforeStart(ClientCallStreamObserver<WatchNodeStateRequest> requestStream) {
            synchronized (NodeLink.this) {
                call = requestStream;
            }
            streamOpen = true;
        }

        @Override
        public void onNext(NodeState state) {
            latest = Optional.of(new CachedNode(state, System.nanoTime()));
            synchronized (NodeLink.this) {
                backoff = FIRST_BACKOFF;
            }
            try {
                onState.accept(NodeLink.this, state);
            } catch (RuntimeException e) {
                log.warn("event=node_state_listener_failed node={} error={}", nodeName(), e.toString());
            }
        }

        @Override
        public void onError(Throwable error) {
            dropped(Status.fromThrowable(error).toString());
        }

        @Override
        public void onCompleted() {
            dropped("agent ended the stream (shutting down)");
        }
    }

    private void dropped(String why) {
        streamOpen = false;
        lastFailure = why;
        Duration wait;
        synchronized (this) {
            if (closed) {
                return;
            }
            // full jitter: replicas and nodes that dropped together do not reconnect together
            wait = Duration.ofMillis(
                    ThreadLocalRandom.current().nextLong(backoff.toMillis() / 2, backoff.toMillis() + 1));
            Duration doubled = backoff.multipliedBy(2);
            backoff = doubled.compareTo(maxBackoff) > 0 ? maxBackoff : doubled;
        }
        log.info(
                "event=node_stream_dropped node={} agent={} reason=\"{}\" retry_in_ms={}",
                nodeName(),
                endpoint.target(),
                why,
                wait.toMillis());
        var _ = timer.schedule(this::openStream, wait.toMillis(), TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() {
        ClientCallStreamObserver<WatchNodeStateRequest> open;
        synchronized (this) {
            closed = true;
            open = call;
        }
        streamOpen = false;
        if (open != null) {
            open.cancel("node link closed", null);
        }
        channel.shutdownNow();
    }
}
