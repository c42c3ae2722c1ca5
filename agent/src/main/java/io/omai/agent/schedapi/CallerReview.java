package io.omai.agent.schedapi;

import java.util.Objects;
import java.util.Set;

/**
 * Who a bearer token belongs to: the Kubernetes API's TokenReview in the daemon (package {@code kube} does the
 * call; this package only sees the answer), a table in tests.
 */
@FunctionalInterface
public interface CallerReview {
    /**
     * @throws Unavailable when nobody could say (the API server unreachable or failing): the caller is refused,
     *     never let through
     */
    Verdict review(String token);

    /** The review's answer. */
    sealed interface Verdict {
        /** The token is valid: it belongs to {@code user}, a member of {@code groups}. */
        record Authenticated(String user, Set<String> groups) implements Verdict {
            public Authenticated {
                Objects.requireNonNull(user, "user");
                groups = Set.copyOf(groups);
            }
        }

        /** The token is not valid (expired, forged, another audience); {@code reason} says why when known. */
        record Rejected(String reason) implements Verdict {
            public Rejected {
                Objects.requireNonNull(reason, "reason");
            }
        }
    }

    /** Nobody could check the token now. */
    final class Unavailable extends RuntimeException {
        private static final long serialVersionUID = 1L;

        public Unavailable(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
