package io.omai.simulator.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * One scheduling cycle of kube-scheduler with one HTTP extender configured {@code nodeCacheCapable: true},
 * {@code filterVerb: filter}, {@code prioritizeVerb: prioritize}, {@code bindVerb: bind}, managing
 * {@code omai.io/milli-gpu} and {@code omai.io/ib-vf}, speaking k8s.io/kube-scheduler/extender/v1 JSON:
 *
 * <ol>
 *   <li>kube-scheduler's own NodeResourcesFit: a node whose allocatable extended resources minus what the pods
 *       bound to it request cannot hold the pod is not sent to the extender;</li>
 *   <li>{@code POST <prefix>/filter} with {@code ExtenderArgs {Pod, Nodes: null, NodeNames}}: the survivors are
 *       {@code ExtenderFilterResult.NodeNames}; {@code Error} fails the cycle;</li>
 *   <li>one survivor is taken without scoring (as kube-scheduler does); else
 *       {@code POST <prefix>/prioritize} on the survivors, each {@code HostPriority.Score} (0–10) times the
 *       extender's weight and kube-scheduler's scale (MaxNodeScore/MaxExtenderPriority = 10); the highest wins,
 *       ties broken by a seeded random choice (kube-scheduler picks among ties at random);</li>
 *   <li>{@code POST <prefix>/bind} with {@code ExtenderBindingArgs {PodName, PodNamespace, PodUID, Node}}: an
 *       {@code Error} (or a transport failure) is a failed binding, which kube-scheduler requeues.</li>
 * </ol>
 *
 * <p>kube-scheduler's other score plugins are not emulated: every node here is alike in CPU and memory, so they
 * would add the same score to every node.
 */
public final class KubeSchedulerDriver {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final KubernetesSerialization KUBE_JSON = new KubernetesSerialization();
    private static final List<String> MANAGED = List.of(SimulatedCluster.MILLI_GPU, SimulatedCluster.IB_VF);

    private final KubernetesClient client;
    private final URI urlPrefix;
    private final int weight;
    private final Random random;
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    /** What one cycle decided. */
    public sealed interface Outcome {
        /** Bound to {@code node} by the extender. */
        record Bound(String node, long score, int candidates) implements Outcome {}

        /** No node could take the pod: kube-scheduler's own reason, or the extender's per-node reasons. */
        record Unschedulable(String reason, Map<String, String> failedNodes) implements Outcome {}

        /** The extender's filter failed, or its binding did: kube-scheduler requeues the pod. */
        record Failed(String phase, String error) implements Outcome {}
    }

    /** @param urlPrefix the extender's {@code urlPrefix}, e.g. {@code http://127.0.0.1:8888/omai} */
    public KubeSchedulerDriver(KubernetesClient client, URI urlPrefix, int weight, long seed) {
        this.client = client;
        this.urlPrefix = urlPrefix;
        this.weight = weight;
        this.random = new Random(seed);
    }

    /** One scheduling cycle for {@code pod} (as read from the API: its UID set). */
    public Outcome schedule(Pod pod) {
        List<String> fit = new ArrayList<>();
        Map<String, String> insufficient = new TreeMap<>();
        nodeResourcesFit(pod, fit, insufficient);
        if (fit.isEmpty()) {
            return new Outcome.Unschedulable(
                    "0/" + insufficient.size() + " nodes are available: " + String.join(", ", insufficient.values()),
                    insufficient);
        }
        JsonNode filtered;
        try {
            filtered = post("filter", extenderArgs(pod, fit));
        } catch (ExtenderException e) {
            return new Outcome.Failed("filter", e.getMessage());
        }
        String error = text(filtered, "Error");
        if (!error.isEmpty()) {
            return new Outcome.Failed("filter", error);
        }
        List<String> survivors = new ArrayList<>();
        JsonNode names = field(filtered, "NodeNames");
        if (names != null && names.isArray()) {
            names.forEach(n -> survivors.add(n.asText()));
        }
        survivors.retainAll(fit); // an extender may only narrow the list it was given
        if (survivors.isEmpty()) {
            Map<String, String> failed = new TreeMap<>(insufficient);
            failed.putAll(reasons(field(filtered, "FailedNodes")));
            failed.putAll(reasons(field(filtered, "FailedAndUnresolvableNodes")));
            return new Outcome.Unschedulable(
                    "0/" + (fit.size() + insufficient.size()) + " nodes are available (extender)", failed);
        }
        String chosen;
        long best;
        if (survivors.size() == 1) {
            chosen = survivors.getFirst();
            best = 0;
        } else {
            JsonNode priorities;
            try {
                priorities = post("prioritize", extenderArgs(pod, survivors));
            } catch (ExtenderException e) {
                return new Outcome.Failed("prioritize", e.getMessage());
            }
            Map<String, Long> scores = new LinkedHashMap<>();
            survivors.forEach(node -> scores.put(node, 0L));
            if (priorities != null && priorities.isArray()) {
                for (JsonNode host : priorities) {
                    String node = text(host, "Host");
                    if (scores.containsKey(node)) {
                        JsonNode score = field(host, "Score");
                        scores.put(node, (score == null ? 0 : score.asLong()) * weight * 10);
                    }
                }
            }
            best = scores.values().stream().mapToLong(Long::longValue).max().orElse(0);
            long top = best;
            List<String> ties = scores.entrySet().stream()
                    .filter(e -> e.getValue() == top)
                    .map(Map.Entry::getKey)
                    .toList();
            chosen = ties.get(random.nextInt(ties.size()));
        }
        ObjectNode binding = JSON.createObjectNode()
                .put("PodName", pod.getMetadata().getName())
                .put("PodNamespace", pod.getMetadata().getNamespace())
                .put("PodUID", pod.getMetadata().getUid())
                .put("Node", chosen);
        try {
            String bindError = text(post("bind", binding), "Error");
            if (!bindError.isEmpty()) {
                return new Outcome.Failed("bind", bindError);
            }
        } catch (ExtenderException e) {
            return new Outcome.Failed("bind", e.getMessage());
        }
        return new Outcome.Bound(chosen, best, survivors.size());
    }

    /** kube-scheduler's NodeResourcesFit for the extended resources the extender manages. */
    private void nodeResourcesFit(Pod pod, List<String> fit, Map<String, String> insufficient) {
        Map<String, Long> wanted = requests(pod);
        Map<String, Map<String, Long>> requestedByNode = new HashMap<>();
        for (Pod bound : client.pods().inAnyNamespace().list().getItems()) {
            String node = bound.getSpec() == null ? null : bound.getSpec().getNodeName();
            String phase = bound.getStatus() == null ? null : bound.getStatus().getPhase();
            if (node == null || node.isEmpty() || "Failed".equals(phase) || "Succeeded".equals(phase)) {
                continue;
            }
            Map<String, Long> sum = requestedByNode.computeIfAbsent(node, n -> new HashMap<>());
            requests(bound).forEach((resource, amount) -> sum.merge(resource, amount, Long::sum));
        }
        for (Node node : client.nodes().list().getItems()) {
            String name = node.getMetadata().getName();
            Map<String, Long> requested = requestedByNode.getOrDefault(name, Map.of());
            List<String> short_ = new ArrayList<>();
            for (Map.Entry<String, Long> want : wanted.entrySet()) {
                Quantity allocatable =
                        node.getStatus() == null || node.getStatus().getAllocatable() == null
                                ? null
                                : node.getStatus().getAllocatable().get(want.getKey());
                long free = (allocatable == null
                                ? 0
                                : Quantity.getAmountInBytes(allocatable).longValue())
                        - requested.getOrDefault(want.getKey(), 0L);
                if (free < want.getValue()) {
                    short_.add("Insufficient " + want.getKey());
                }
            }
            if (short_.isEmpty()) {
                fit.add(name);
            } else {
                insufficient.put(name, String.join(", ", short_));
            }
        }
    }

    /** The pod's effective requests of the managed resources: max(largest init container, sum of the others). */
    static Map<String, Long> requests(Pod pod) {
        Map<String, Long> result = new HashMap<>();
        for (String resource : MANAGED) {
            long app = 0;
            for (Container c : pod.getSpec().getContainers()) {
                app += ClusterNode.limit(c, resource);
            }
            long init = 0;
            for (Container c : pod.getSpec().getInitContainers()) {
                init = Math.max(init, ClusterNode.limit(c, resource));
            }
            long amount = Math.max(app, init);
            if (amount > 0) {
                result.put(resource, amount);
            }
        }
        return result;
    }

    private static ObjectNode extenderArgs(Pod pod, List<String> nodeNames) {
        ObjectNode args = JSON.createObjectNode();
        try {
            args.set("Pod", JSON.readTree(KUBE_JSON.asJson(pod)));
        } catch (IOException e) {
            throw new IllegalStateException(
                    "cannot serialise pod " + pod.getMetadata().getName(), e);
        }
        args.putNull("Nodes");
        ArrayNode names = args.putArray("NodeNames");
        nodeNames.forEach(names::add);
        return args;
    }

    private JsonNode post(String verb, JsonNode body) throws ExtenderException {
        URI uri = URI.create(urlPrefix.toString().replaceAll("/+$", "") + "/" + verb);
        HttpResponse<String> response;
        try {
            response = http.send(
                    HttpRequest.newBuilder(uri)
                            .timeout(Duration.ofSeconds(30))
                            .header("Content-Type", "application/json")
                            .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body)))
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new ExtenderException("POST " + uri + " failed: " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ExtenderException("POST " + uri + " interrupted");
        }
        if (response.statusCode() != 200) {
            throw new ExtenderException(
                    "POST " + uri + " answered HTTP " + response.statusCode() + ": " + response.body());
        }
        try {
            return JSON.readTree(response.body());
        } catch (IOException e) {
            throw new ExtenderException("POST " + uri + " answered no JSON: " + e.getMessage());
        }
    }

    /** Go's encoding/json matches field names case-insensitively; so does this. */
    private static JsonNode field(JsonNode object, String name) {
        if (object == null || !object.isObject()) {
            return null;
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = object.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> entry = it.next();
            if (entry.getKey().equalsIgnoreCase(name)) {
                return entry.getValue();
            }
        }
        return null;
    }

    private static String text(JsonNode object, String name) {
        JsonNode value = field(object, name);
        return value == null || value.isNull() ? "" : value.asText();
    }

    private static Map<String, String> reasons(JsonNode map) {
        Map<String, String> reasons = new TreeMap<>();
        if (map != null && map.isObject()) {
            map.properties().forEach(e -> reasons.put(e.getKey(), e.getValue().asText()));
        }
        return reasons;
    }

    /** The extender could not be reached or answered something that is not the protocol. */
    private static final class ExtenderException extends Exception {
        private static final long serialVersionUID = 1L;

        ExtenderException(String message) {
            super(message);
        }
    }
}
