package io.omai.agent.kube;

import io.fabric8.kubernetes.api.model.authentication.TokenReview;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewBuilder;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewStatus;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import java.util.List;
import java.util.Objects;

/**
 * Asks the API server who a bearer token belongs to ({@code authentication.k8s.io/v1} TokenReview, which the
 * agent's ClusterRole may create). The token goes into the request body only; it is never logged.
 */
public final class KubeTokenReviews {
    private final KubernetesClient client;
    private final String audience;

    /** @param audience the audience the token must have been issued for (a projected token's {@code audience}) */
    public KubeTokenReviews(KubernetesClient client, String audience) {
        this.client = Objects.requireNonNull(client, "client");
        this.audience = Objects.requireNonNull(audience, "audience");
    }

    /**
     * What the API server says of {@code token}. Authenticated only when the server says so and the token's
     * audiences include ours (a reviewer that sets audiences must check the answer's).
     *
     * @throws KubernetesClientException when the API server cannot be asked or fails
     */
    public Result review(String token) {
        TokenReview review = new TokenReviewBuilder()
                .withNewSpec()
                .withToken(token)
                .withAudiences(audience)
                .endSpec()
                .build();
        TokenReview answer = client.resource(review).create();
        TokenReviewStatus status = answer == null ? null : answer.getStatus();
        if (status == null) {
            throw new KubernetesClientException("the API server answered the TokenReview without a status");
        }
        if (!Boolean.TRUE.equals(status.getAuthenticated())) {
            String error = status.getError() == null ? "" : status.getError();
            return new Result(false, "", List.of(), error.isBlank() ? "not authenticated" : error);
        }
        List<String> audiences = status.getAudiences() == null ? List.of() : status.getAudiences();
        if (!audiences.contains(audience)) {
            return new Result(false, "", List.of(), "token not issued for audience '" + audience + "'");
        }
        var user = status.getUser();
        if (user == null || user.getUsername() == null || user.getUsername().isBlank()) {
            return new Result(false, "", List.of(), "the review names no user");
        }
        return new Result(true, user.getUsername(), user.getGroups() == null ? List.of() : user.getGroups(), "");
    }

    /**
     * @param user the authenticated user name, e.g. system:serviceaccount:omai-system:omai-scheduler-extender
     * @param reason why the token is not valid; empty when it is
     */
    public record Result(boolean authenticated, String user, List<String> groups, String reason) {
        public Result {
            groups = List.copyOf(groups);
        }
    }
}
