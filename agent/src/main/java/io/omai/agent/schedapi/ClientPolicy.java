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
}
