package io.omai.extender.http;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import io.fabric8.kubernetes.api.model.Pod;
import java.util.List;
import java.util.Map;

/**
 * The kube-scheduler extender protocol ({@code k8s.io/kube-scheduler/extender/v1}, types.go). The Go structs carry
 * no json tags, so the JSON names are the Go field names; Go reads them case-insensitively, these records write
 * them exactly. Unknown fields are ignored, as Go's decoder does.
 */
public final class Protocol {
    private Protocol() {}

    /**
     * The body of filter and prioritize.
     *
     * @param pod the full core/v1 Pod
     * @param nodes a core/v1 NodeList, sent only when nodeCacheCapable is false (kept as JSON: only its items'
     *     names are read, and filter returns the items that pass unchanged)
     * @param nodeNames sent when nodeCacheCapable is true
     */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ExtenderArgs(
            @JsonProperty("Pod") Pod pod,
            @JsonProperty("Nodes") JsonNode nodes,
            @JsonProperty("NodeNames") List<String> nodeNames) {}

    /** Filter's answer. Nodes is set only when the request carried Nodes, NodeNames only when it carried NodeNames. */
    @JsonInclude(JsonInclude.Include.ALWAYS)
    public record ExtenderFilterResult(
            @JsonProperty("Nodes") JsonNode nodes,
            @JsonProperty("NodeNames") List<String> nodeNames,
            @JsonProperty("FailedNodes") Map<String, String> failedNodes,
            @JsonProperty("FailedAndUnresolvableNodes") Map<String, String> failedAndUnresolvableNodes,
            @JsonProperty("Error") String error) {}

    /** One entry of prioritize's answer (a HostPriorityList). Score is 0..10 (MaxExtenderPriority). */
    public record HostPriority(
            @JsonProperty("Host") String host,
            @JsonProperty("Score") long score) {}

    /** The body of bind. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ExtenderBindingArgs(
            @JsonProperty("PodName") String podName,
            @JsonProperty("PodNamespace") String podNamespace,
            @JsonProperty("PodUID") String podUid,
            @JsonProperty("Node") String node) {}

    /** Bind's answer: Error empty on success. */
    public record ExtenderBindingResult(
            @JsonProperty("Error") String error) {}
}
