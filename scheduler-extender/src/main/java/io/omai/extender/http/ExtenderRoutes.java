package io.omai.extender.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.omai.extender.bind.Binder;
import io.omai.extender.decide.Decider;
import io.omai.extender.decide.InvalidPodException;
import io.omai.extender.decide.PodDemand;
import io.omai.extender.decide.Verdict;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** What each verb answers, independent of the HTTP server that carries it. */
public final class ExtenderRoutes {
    private static final Logger log = LoggerFactory.getLogger(ExtenderRoutes.class);
    /** The verbs kube-scheduler appends to urlPrefix (KubeSchedulerConfiguration extenders[].filterVerb, ...). */
    public static final String FILTER_VERB = "filter";

    public static final String PRIORITIZE_VERB = "prioritize";
    public static final String BIND_VERB = "bind";

    private final Decider decider;
    private final Binder binder;
    private final Binder.PodReader reader;

    public ExtenderRoutes(Decider decider, Binder binder, Binder.PodReader reader) {
        this.decider = decider;
        this.binder = binder;
        this.reader = reader;
    }

    /** Thrown for a request kube-scheduler could not have meant: answered 400 with the message. */
    public static final class BadRequest extends Exception {
        public BadRequest(String message) {
            super(message);
        }
    }

    public Protocol.ExtenderFilterResult filter(Protocol.ExtenderArgs args) throws BadRequest {
        List<String> nodes = nodeNames(args);
        PodDemand pod;
        try {
            pod = reader.read(args.pod());
        } catch (InvalidPodException e) {
            log.info("event=filter_refused_pod error=\"{}\"", e.getMessage());
            return new Protocol.ExtenderFilterResult(null, null, Map.of(), Map.of(), e.getMessage());
        }
        List<String> passed = new ArrayList<>();
        Map<String, String> failed = new LinkedHashMap<>();
        Map<String, String> unresolvable = new LinkedHashMap<>();
        if (!pod.wantsDevices()) {
            passed.addAll(nodes);
        } else {
            decider.decide(pod, nodes).forEach((node, verdict) -> {
                switch (verdict) {
                    case Verdict.Fits _ -> passed.add(node);
                    case Verdict.Fails fails when fails.unresolvable() -> unresolvable.put(node, fails.reason());
                    case Verdict.Fails fails -> failed.put(node, fails.reason());
                }
            });
        }
        log.debug(
                "event=filtered pod={}/{} nodes={} passed={} failed={} unresolvable={}",
                pod.namespace(),
                pod.name(),
                nodes.size(),
                passed.size(),
                failed.size(),
                unresolvable.size());
        return args.nodeNames() != null
                ? new Protocol.ExtenderFilterResult(null, passed, failed, unresolvable, "")
                : new Protocol.ExtenderFilterResult(keepItems(args.nodes(), passed), null, failed, unresolvable, "");
    }

    public List<Protocol.HostPriority> prioritize(Protocol.ExtenderArgs args) throws BadRequest {
        List<String> nodes = nodeNames(args);
        PodDemand pod;
        try {
            pod = reader.read(args.pod());
        } catch (InvalidPodException e) {
            throw new BadRequest(e.getMessage());
        }
        if (!pod.wantsDevices()) {
            return nodes.stream().map(n -> new Protocol.HostPriority(n, 0)).toList();
        }
        var scores = new ArrayList<Protocol.HostPriority>(nodes.size());
        decider.decide(pod, nodes)
                .forEach((node, verdict) -> scores.add(
                        new Protocol.HostPriority(node, verdict instanceof Verdict.Fits fits ? fits.score() : 0)));
        return scores;
    }

    public Protocol.ExtenderBindingResult bind(Protocol.ExtenderBindingArgs args) throws BadRequest {
        if (args.podName() == null
                || args.podName().isEmpty()
                || args.node() == null
                || args.node().isEmpty()) {
            throw new BadRequest("ExtenderBindingArgs needs PodName, PodNamespace, PodUID and Node; got PodName="
                    + args.podName() + ", Node=" + args.node());
        }
        String namespace =
                args.podNamespace() == null || args.podNamespace().isEmpty() ? "default" : args.podNamespace();
        return new Protocol.ExtenderBindingResult(
                binder.bind(namespace, args.podName(), args.podUid() == null ? "" : args.podUid(), args.node())
                        .orElse(""));
    }

    private static List<String> nodeNames(Protocol.ExtenderArgs args) throws BadRequest {
        if (args.pod() == null) {
            throw new BadRequest("ExtenderArgs has no Pod; expected {\"Pod\": <core/v1 Pod>, \"NodeNames\": [...]}");
        }
        if (args.nodeNames() != null) {
            return args.nodeNames();
        }
        if (args.nodes() == null || args.nodes().isNull()) {
            throw new BadRequest("ExtenderArgs has neither NodeNames (nodeCacheCapable: true) nor Nodes (a core/v1 "
                    + "NodeList); expected one of them");
        }
        if (!args.nodes().isObject()) {
            throw new BadRequest("ExtenderArgs.Nodes is not an object; expected a core/v1 NodeList");
        }
        JsonNode items = args.nodes().path("items");
        if (!items.isArray() && !items.isMissingNode() && !items.isNull()) {
            throw new BadRequest("ExtenderArgs.Nodes.items is not an array; expected a core/v1 NodeList");
        }
        List<String> names = new ArrayList<>();
        for (JsonNode item : items) {
            String name = item.path("metadata").path("name").asText("");
            if (name.isEmpty()) {
                throw new BadRequest("ExtenderArgs.Nodes.items[" + names.size() + "] has no metadata.name");
            }
            names.add(name);
        }
        return names;
    }

    private static JsonNode keepItems(JsonNode nodeList, List<String> passed) {
        ObjectNode copy = ((ObjectNode) nodeList).deepCopy();
        ArrayNode kept = copy.putArray("items");
        var wanted = new HashSet<>(passed);
        for (JsonNode item : nodeList.path("items")) {
            if (wanted.contains(item.path("metadata").path("name").asText(""))) {
                kept.add(item);
            }
        }
        return copy;
    }
}
