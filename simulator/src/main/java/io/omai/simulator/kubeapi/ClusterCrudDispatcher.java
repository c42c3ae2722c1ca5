package io.omai.simulator.kubeapi;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.Status;
import io.fabric8.kubernetes.api.model.StatusBuilder;
import io.fabric8.kubernetes.api.model.authentication.TokenReview;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewStatusBuilder;
import io.fabric8.kubernetes.api.model.authentication.UserInfoBuilder;
import io.fabric8.kubernetes.client.server.mock.KubernetesCrudDispatcher;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import io.fabric8.mockwebserver.dsl.HttpMethod;
import io.fabric8.mockwebserver.http.Buffer;
import io.fabric8.mockwebserver.http.Headers;
import io.fabric8.mockwebserver.http.MockResponse;
import io.fabric8.mockwebserver.http.RecordedRequest;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * fabric8's mock API server in CRUD mode, completed with what a simulated cluster's agents and scheduler need of
 * a real API server:
 *
 * <ul>
 *   <li><b>Pods by node.</b> The mock matches field selectors on {@code metadata.name} and
 *       {@code metadata.namespace} alone, so the selector every agent's informer sends,
 *       {@code spec.nodeName=<node>}, would select nothing. It is dropped from the request: the agent then lists
 *       and watches every pod and keeps its own node's ({@code KubePodWatch} drops the others as well), which is
 *       the same set a real API server would have sent.</li>
 *   <li><b>Bindings.</b> {@code POST /api/v1/namespaces/NS/pods/NAME/binding} assigns the pod to the target node
 *       (sets {@code spec.nodeName}) as the API server does; a pod already assigned answers 409 Conflict, so of two
 *       schedulers binding one pod exactly one wins. Bindings are serialised here.</li>
 *   <li><b>TokenReviews.</b> {@code POST /apis/authentication.k8s.io/v1/tokenreviews} answers authenticated, with
 *       the user name, for a token {@link #acceptToken accepted} here, and unauthenticated for any other.</li>
 * </ul>
 */
public final class ClusterCrudDispatcher extends KubernetesCrudDispatcher {
    private static final Pattern NODE_SELECTOR =
            Pattern.compile("(?<=[?&])fieldSelector=spec\\.nodeName(%3D|=)[A-Za-z0-9.-]+(&|$)");
    /** The pod's binding subresource. */
    private static final Pattern POD_BINDING =
            Pattern.compile("^/api/v1/namespaces/([a-z0-9.-]+)/pods/([a-z0-9.-]+)/binding(\\?.*)?$");
    /** The namespace's bindings collection (what fabric8's {@code client.bindings()} posts to): the pod is the
     * Binding's {@code metadata.name}. */
    private static final Pattern BINDINGS = Pattern.compile("^/api/v1/namespaces/([a-z0-9.-]+)/bindings(\\?.*)?$");

    private static final Pattern TOKEN_REVIEW =
            Pattern.compile("^/apis/authentication\\.k8s\\.io/v1/tokenreviews(\\?.*)?$");

    private final KubernetesSerialization json = new KubernetesSerialization();
    private final Map<String, String> usersByToken = new ConcurrentHashMap<>();
    private final Object bindings = new Object();

    @GuardedBy("bindings")
    private long bound;

    /** Tokens in a TokenReview for which this API answers authenticated as {@code username}. */
    public ClusterCrudDispatcher acceptToken(String token, String username) {
        usersByToken.put(token, username);
        return this;
    }

    /** How many Bindings have assigned a pod so far. */
    public long bindings() {
        synchronized (bindings) {
            return bound;
        }
    }

    @Override
    public MockResponse handleGet(String path) {
        return super.handleGet(withoutNodeSelector(path));
    }

    @Override
    public MockResponse handleWatch(String path) {
        return super.handleWatch(withoutNodeSelector(path));
    }

    @Override
    public MockResponse handleCreate(RecordedRequest request) {
        Matcher binding = POD_BINDING.matcher(request.getPath());
        if (binding.matches()) {
            return bind(binding.group(1), binding.group(2), request.getUtf8Body());
        }
        Matcher collection = BINDINGS.matcher(request.getPath());
        if (collection.matches()) {
            return bind(collection.group(1), null, request.getUtf8Body());
        }
        if (TOKEN_REVIEW.matcher(request.getPath()).matches()) {
            return review(request.getUtf8Body());
        }
        return super.handleCreate(request);
    }

    /** The path without an informer's {@code spec.nodeName} field selector, whatever the node. */
    static String withoutNodeSelector(String path) {
        String stripped = NODE_SELECTOR.matcher(path).replaceFirst("");
        return stripped.endsWith("?") || stripped.endsWith("&")
                ? stripped.substring(0, stripped.length() - 1)
                : stripped;
    }

    /** Assigns pod {@code podName} (null: the Binding's {@code metadata.name}) to the Binding's target node. */
    private MockResponse bind(String namespace, String podName, String body) {
        io.fabric8.kubernetes.api.model.Binding binding;
        try {
            binding = json.unmarshal(body, io.fabric8.kubernetes.api.model.Binding.class);
        } catch (RuntimeException e) {
            return status(
                    400, "BadRequest", "a Binding in namespace " + namespace + " is not valid JSON: " + e.getMessage());
        }
        String name = podName != null
                ? podName
                : binding == null || binding.getMetadata() == null
                        ? null
                        : binding.getMetadata().getName();
        if (name == null || name.isEmpty()) {
            return status(400, "BadRequest", "a Binding in namespace " + namespace + " has no metadata.name (the pod)");
        }
        if (binding == null
                || binding.getTarget() == null
                || binding.getTarget().getName() == null
                || binding.getTarget().getName().isEmpty()) {
            return status(400, "BadRequest", "the Binding of pod " + namespace + "/" + name + " names no target node");
        }
        String node = binding.getTarget().getName();
        String path = "/api/v1/namespaces/" + namespace + "/pods/" + name;
        synchronized (bindings) {
            MockResponse current = super.handleGet(path);
            if (current.code() != 200) {
                return status(404, "NotFound", "pods \"" + name + "\" not found in namespace " + namespace);
            }
            Pod pod = json.unmarshal(current.getBody().readUtf8(), Pod.class);
            String assigned = pod.getSpec() == null ? null : pod.getSpec().getNodeName();
            String uid =
                    binding.getMetadata() == null ? null : binding.getMetadata().getUid();
            if (uid != null && !uid.isEmpty() && !uid.equals(pod.getMetadata().getUid())) {
                return status(
                        409,
                        "Conflict",
                        "Precondition failed: UID in precondition: " + uid + ", UID in object meta: "
                                + pod.getMetadata().getUid());
            }
            if (assigned != null && !assigned.isEmpty()) {
                return status(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on pods/binding \"" + name + "\": pod " + name
                                + " is already assigned to node \"" + assigned + "\"");
            }
            String patch = "{\"spec\":{\"nodeName\":" + json.asJson(node) + "}}";
            MockResponse patched = handlePatch(new RecordedRequest(
                    "HTTP/1.1",
                    HttpMethod.PATCH,
                    path,
                    Headers.builder()
                            .add("Content-Type", "application/merge-patch+json")
                            .build(),
                    new Buffer(patch.getBytes(StandardCharsets.UTF_8))));
            if (patched.code() != 200) {
                return patched;
            }
            bound++;
        }
        return status(201, "Success", "");
    }

    private MockResponse review(String body) {
        TokenReview review;
        try {
            review = json.unmarshal(body, TokenReview.class);
        } catch (RuntimeException e) {
            return status(400, "BadRequest", "the TokenReview is not valid JSON: " + e.getMessage());
        }
        if (review == null || review.getSpec() == null || review.getSpec().getToken() == null) {
            return status(400, "BadRequest", "the TokenReview has no spec.token");
        }
        String user = usersByToken.get(review.getSpec().getToken());
        review.setStatus(
                user == null
                        ? new TokenReviewStatusBuilder()
                                .withAuthenticated(false)
                                .withError("the token is not one this API server issued")
                                .build()
                        : new TokenReviewStatusBuilder()
                                .withAuthenticated(true)
                                .withUser(new UserInfoBuilder()
                                        .withUsername(user)
                                        .withGroups(List.of("system:serviceaccounts", "system:authenticated"))
                                        .build())
                                .withAudiences(review.getSpec().getAudiences())
                                .build());
        return new MockResponse().setResponseCode(201).setBody(json.asJson(review));
    }

    private MockResponse status(int code, String reason, String message) {
        Status status = new StatusBuilder()
                .withStatus(code < 300 ? "Success" : "Failure")
                .withCode(code)
                .withReason(code < 300 ? null : reason)
                .withMessage(message)
                .build();
        return new MockResponse().setResponseCode(code).setBody(json.asJson(status));
    }
}
