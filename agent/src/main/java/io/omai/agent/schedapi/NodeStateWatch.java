package io.omai.agent.schedapi;

import io.grpc.Context;
import io.grpc.stub.ServerCallStreamObserver;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.schedapi.v1.WatchNodeStateRequest;

/**
 * One WatchNodeState stream, modelled on grpc-java's HealthServiceImpl.watch: registered with the publisher
 * before the first state is taken (so no change is missed), removed both by the call's cancel handler and by a
 * Context cancellation listener. A slow client never builds a queue: while the transport is not ready only the
 * newest state is kept, and it is sent when the transport says it is ready again.
 */
final class NodeStateWatch implements NodeStatePublisher.Observer {
    private final ServerCallStreamObserver<NodeState> call;
    private final NodeStatePublisher publisher;
    private final Object lock = new Object();
    // @GuardedBy("lock"): the newest state not yet sent, or null
    private NodeState pending;
    // @GuardedBy("lock"): generation of the newest state sent or pending; older ones are dropped
    private long newestGeneration;
    // @GuardedBy("lock")
    private boolean closed;

    private NodeStateWatch(
            ServerCallStreamObserver<NodeState> call, NodeStatePublisher publisher, long clientGeneration) {
        this.call = call;
        this.publisher = publisher;
        this.newestGeneration = clientGeneration;
    }

    /** Starts a watch; must run inside the service method (grpc only accepts handlers there). */
    static void start(
            WatchNodeStateRequest request, ServerCallStreamObserver<NodeState> call, NodeStatePublisher publisher) {
        boolean sameIncarnation =
                request.getIncarnation().isEmpty() || request.getIncarnation().equals(publisher.incarnation());
        // a client from another incarnation gets the current state whatever generation it names
        long clientGeneration = sameIncarnation ? request.getAfterGeneration() : 0;
        var watch = new NodeStateWatch(call, publisher, clientGeneration);
        call.setOnReadyHandler(watch::drain);
        call.setOnCancelHandler(watch::stop);
        Context.current().addListener(context -> watch.stop(), Runnable::run);
        NodeState now = publisher.observe(watch);
        watch.accept(now);
    }

    /** Takes a new state: kept if newer than what the client has, sent when the transport is ready. */
    @Override
    public void accept(NodeState state) {
        synchronized (lock) {
            if (closed || state.getGeneration() <= newestGeneration) {
                return;
            }
            pending = state;
            newestGeneration = state.getGeneration();
        }
        drain();
    }

    private void drain() {
        synchronized (lock) {
            // under the lock so that onNext is never called from two threads at once
            if (!closed && pending != null && call.isReady()) {
                NodeState toSend = pending;
                pending = null;
                call.onNext(toSend);
            }
        }
    }

    @Override
    public void end() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            pending = null;
            call.onCompleted();
        }
    }

    private void stop() {
        synchronized (lock) {
            closed = true;
            pending = null;
        }
        publisher.stopObserving(this);
    }
}
