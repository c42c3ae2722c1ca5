package io.omai.extender;

import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.WatchNodeStateRequest;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Sits in front of a test agent's WatchNodeState: records what watchers ask for (to see resumption by
 * generation), can refuse the stream (a node whose stream is down while Fit still answers) or silently stop
 * delivering states (a stale cache), and records the authorization header of every call.
 */
public final class WatchTap implements ServerInterceptor {
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    public final List<WatchNodeStateRequest> requests = new CopyOnWriteArrayList<>();
    public final List<String> authorizations = new CopyOnWriteArrayList<>();
    public volatile boolean refuseWatch;
    public volatile boolean frozen;

    @Override
    public <Q, A> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, A> call, Metadata headers, ServerCallHandler<Q, A> next) {
        String method = call.getMethodDescriptor().getFullMethodName();
        authorizations.add(method + " " + String.valueOf(headers.get(AUTHORIZATION)));
        if (!method.equals(NodeAgentGrpc.getWatchNodeStateMethod().getFullMethodName())) {
            return next.startCall(call, headers);
        }
        if (refuseWatch) {
            call.close(Status.UNAVAILABLE.withDescription("watch refused by the test"), new Metadata());
            return new ServerCall.Listener<>() {};
        }
        var silenced = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
            @Override
            public void sendMessage(A message) {
                if (!frozen) {
                    super.sendMessage(message);
                }
            }
        };
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(
                next.startCall(silenced, headers)) {
            @Override
            public void onMessage(Q message) {
                requests.add((WatchNodeStateRequest) message);
                super.onMessage(message);
            }
        };
    }
}
