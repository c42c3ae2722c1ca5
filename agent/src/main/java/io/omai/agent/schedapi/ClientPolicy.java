package io.omai.agent.schedapi;

import java.util.Set;

/** Who may change reservations (Reserve, Release). Reading state and Fit are open to every connected client. */
public sealed interface ClientPolicy {
    /**
     * Anyone: for plaintext development setups and in-process tests only. Never use this on a reachable port;
     * the server logs a warning when it starts with it.
     */
    record AnyClient() implements ClientPolicy {}

    /**
     * Clients whose TLS certificate names one of {@code identities}: the subject CN, a DNS SAN or a URI SAN
     * (e.g. {@code spiffe://cluster/ns/kube-system/sa/omai-scheduler}), compared exactly.
     */
    record AllowList(Set<String> identities) implements ClientPolicy {
        public AllowList {
            identities = Set.copyOf(identities);
            if (identities.isEmpty()) {
                throw new IllegalArgumentException("an allow-list of scheduler identities must not be empty");
            }
        }
    }

    /**
     * Clients presenting {@code authorization: Bearer <token>} whose token {@code review} finds valid for a user
     * or group in {@code callers} (e.g. {@code system:serviceaccount:omai-system:omai-scheduler-extender}), or a
     * TLS certificate naming one of {@code certificateIdentities} (empty without TLS).
     *
     * @param audience the audience the token must be issued for, named in refusals
     */
    record Tokens(CallerReview review, Set<String> callers, String audience, Set<String> certificateIdentities)
            implements ClientPolicy {
        public Tokens {
            java.util.Objects.requireNonNull(review, "review");
            callers = Set.copyOf(callers);
            java.util.Objects.requireNonNull(audience, "audience");
            certificateIdentities = Set.copyOf(certificateIdentities);
            if (callers.isEmpty()) {
                throw new IllegalArgumentException("an allow-list of scheduler callers must not be empty");
            }
        }
    }
}
