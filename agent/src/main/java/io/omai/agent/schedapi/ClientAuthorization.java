package io.omai.agent.schedapi;

import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Optional;
import java.util.Set;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Lets only allow-listed clients change reservations: Reserve and Release need a verified client certificate
 * naming an allowed identity, or the call ends with PERMISSION_DENIED before the service sees it.
 */
final class ClientAuthorization implements ServerInterceptor {
    private static final Logger log = LoggerFactory.getLogger(ClientAuthorization.class);
    private static final Set<String> MUTATING_METHODS = Set.of(
            NodeAgentGrpc.getReserveMethod().getFullMethodName(),
            NodeAgentGrpc.getReleaseMethod().getFullMethodName());

    private final ClientPolicy policy;

    ClientAuthorization(ClientPolicy policy) {
        this.policy = policy;
    }

    @Override
    public <Q, A> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, A> call, Metadata headers, ServerCallHandler<Q, A> next) {
        String method = call.getMethodDescriptor().getFullMethodName();
        if (!MUTATING_METHODS.contains(method) || !(policy instanceof ClientPolicy.AllowList(Set<String> allowed))) {
            return next.startCall(call, headers);
        }
        Optional<ClientIdentity> identity = peerIdentity(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
        if (identity.isPresent() && identity.get().isAnyOf(allowed)) {
            return next.startCall(call, headers);
        }
        String who = identity.map(id -> "client " + id.names()).orElse("a client without a verified certificate");
        log.warn("refused {} to {}", method, who);
        call.close(
                Status.PERMISSION_DENIED.withDescription(who + " may not call " + method
                        + "; its certificate's CN or SAN must be in the node agent's allowed scheduler identities"),
                new Metadata());
        return new ServerCall.Listener<>() {};
    }

    private static Optional<ClientIdentity> peerIdentity(SSLSession session) {
        if (session == null) {
            return Optional.empty();
        }
        try {
            Certificate[] chain = session.getPeerCertificates();
            return chain.length > 0 && chain[0] instanceof X509Certificate leaf
                    ? Optional.of(ClientIdentity.of(leaf))
                    : Optional.empty();
        } catch (SSLPeerUnverifiedException e) {
            return Optional.empty();
        }
    }
}
