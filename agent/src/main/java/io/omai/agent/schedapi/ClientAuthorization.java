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
import java.util.TreeSet;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Lets only allow-listed clients change reservations (Reserve, Release) as the {@link ClientPolicy} says: a verified
 * client certificate naming an allowed identity, or a bearer token a {@link CallerReview} finds valid for an
 * allowed user or group. Refusals end the call before the service sees it: UNAUTHENTICATED without valid
 * credentials, PERMISSION_DENIED for a caller not allowed, UNAVAILABLE when the token cannot be checked now.
 * Tokens are never logged.
 */
final class ClientAuthorization implements ServerInterceptor {
    private static final Logger log = LoggerFactory.getLogger(ClientAuthorization.class);
    private static final Set<String> MUTATING_METHODS = Set.of(
            NodeAgentGrpc.getReserveMethod().getFullMethodName(),
            NodeAgentGrpc.getReleaseMethod().getFullMethodName());

    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private static final String BEARER = "Bearer ";

    private final ClientPolicy policy;

    ClientAuthorization(ClientPolicy policy) {
        this.policy = policy;
    }

    @Override
    public <Q, A> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, A> call, Metadata headers, ServerCallHandler<Q, A> next) {
        String method = call.getMethodDescriptor().getFullMethodName();
        if (!MUTATING_METHODS.contains(method)) {
            return next.startCall(call, headers);
        }
        Optional<Status> refusal = switch (policy) {
            case ClientPolicy.AnyClient any -> Optional.empty();
            case ClientPolicy.AllowList(Set<String> allowed) -> certificateRefusal(call, method, allowed);
            case ClientPolicy.Tokens tokens -> tokenRefusal(call, headers, method, tokens);
        };
        if (refusal.isEmpty()) {
            return next.startCall(call, headers);
        }
        call.close(refusal.get(), new Metadata());
        return new ServerCall.Listener<>() {};
    }

    private static Optional<Status> certificateRefusal(ServerCall<?, ?> call, String method, Set<String> allowed) {
        Optional<ClientIdentity> identity = peerIdentity(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
        if (identity.isPresent() && identity.get().isAnyOf(allowed)) {
            return Optional.empty();
        }
        String who = identity.map(id -> "client " + id.names()).orElse("a client without a verified certificate");
        log.warn("event=scheduler_call_refused method={} caller=\"{}\" reason=certificate", method, who);
        return Optional.of(Status.PERMISSION_DENIED.withDescription(who + " may not call " + method
                + "; its certificate's CN or SAN must be in the node agent's allowed scheduler identities"));
    }

    /** A certificate in the allow-list passes; else the bearer token must be valid and belong to a caller. */
    private static Optional<Status> tokenRefusal(
            ServerCall<?, ?> call, Metadata headers, String method, ClientPolicy.Tokens tokens) {
        if (!tokens.certificateIdentities().isEmpty()) {
            Optional<ClientIdentity> identity =
                    peerIdentity(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
            if (identity.isPresent() && identity.get().isAnyOf(tokens.certificateIdentities())) {
                return Optional.empty();
            }
        }
        String expected = "expected gRPC metadata 'authorization: Bearer <token>' with a service-account token for "
                + "audience '" + tokens.audience() + "' of one of " + new TreeSet<>(tokens.callers());
        String header = headers.get(AUTHORIZATION);
        if (header == null
                || !header.regionMatches(true, 0, BEARER, 0, BEARER.length())
                || header.substring(BEARER.length()).isBlank()) {
            log.warn("event=scheduler_call_refused method={} reason=no_token", method);
            return Optional.of(Status.UNAUTHENTICATED.withDescription(
                    method + " needs an authenticated scheduler: no bearer token; " + expected));
        }
        String token = header.substring(BEARER.length()).strip();
        CallerReview.Verdict verdict;
        try {
            verdict = tokens.review().review(token);
        } catch (CallerReview.Unavailable e) {
            log.warn(
                    "event=scheduler_call_refused method={} reason=review_unavailable error=\"{}\"",
                    method,
                    e.getMessage());
            return Optional.of(Status.UNAVAILABLE.withDescription("cannot check the caller's token now ("
                    + e.getMessage() + "); " + method + " is refused until the token can be reviewed, retry"));
        }
        return switch (verdict) {
            case CallerReview.Verdict.Rejected(String reason) -> {
                log.warn("event=scheduler_call_refused method={} reason=token_rejected detail=\"{}\"", method, reason);
                yield Optional.of(Status.UNAUTHENTICATED.withDescription(method + " refused: the bearer token is not "
                        + "valid" + (reason.isBlank() ? "" : " (" + reason + ")") + "; " + expected));
            }
            case CallerReview.Verdict.Authenticated(String user, Set<String> groups) -> {
                if (tokens.callers().contains(user) || groups.stream().anyMatch(tokens.callers()::contains)) {
                    yield Optional.empty();
                }
                log.warn("event=scheduler_call_refused method={} reason=not_allowed user={}", method, user);
                yield Optional.of(Status.PERMISSION_DENIED.withDescription(user + " may not call " + method
                        + "; the node agent allows " + new TreeSet<>(tokens.callers())
                        + " (schedulerApi.reserveCallers, a user name or group)"));
            }
        };
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
