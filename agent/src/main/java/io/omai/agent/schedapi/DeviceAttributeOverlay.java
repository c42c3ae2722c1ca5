package io.omai.agent.schedapi;

import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Merges configured attributes and tags into what NVML reports, so operators can label GPUs
 * ({@code class: train}, {@code tags: [nvlink]}) and expressions can select on the labels. Rules apply in order;
 * a later rule's attribute wins over an earlier one's and over NVML's for the same key; tags accumulate. NVML's
 * typed facts (UUID, model, memory, NUMA node) are never overridden.
 */
public final class DeviceAttributeOverlay {
    /** Which GPUs a rule applies to. */
    public sealed interface Selector {
        boolean matches(GpuSnapshot gpu);

        /** Every GPU on the node. */
        record All() implements Selector {
            @Override
            public boolean matches(GpuSnapshot gpu) {
                return true;
            }
        }

        record ByUuid(String uuid) implements Selector {
            @Override
            public boolean matches(GpuSnapshot gpu) {
                return gpu.uuid().equals(uuid);
            }
        }

        record ByIndex(int index) implements Selector {
            @Override
            public boolean matches(GpuSnapshot gpu) {
                return gpu.index() == index;
            }
        }

        /** Exact model name as NVML reports it, e.g. "NVIDIA H100 80GB HBM3". */
        record ByModel(String model) implements Selector {
            @Override
            public boolean matches(GpuSnapshot gpu) {
                return gpu.model().equals(model);
            }
        }
    }

    public record Rule(Selector selector, Map<String, String> attributes, Set<String> tags) {
        public Rule {
            Objects.requireNonNull(selector, "selector");
            attributes = Map.copyOf(attributes);
            tags = Set.copyOf(tags);
        }
    }

    private final List<Rule> rules;

    public DeviceAttributeOverlay(List<Rule> rules) {
        this.rules = List.copyOf(rules);
    }

    public static DeviceAttributeOverlay none() {
        return new DeviceAttributeOverlay(List.of());
    }

    /** {@code reported} with every matching rule's attributes and tags merged in. */
    public GpuSnapshot apply(GpuSnapshot reported) {
        Map<String, String> attributes = null;
        Set<String> tags = null;
        for (Rule rule : rules) {
            if (rule.selector().matches(reported)) {
                if (attributes == null) {
                    attributes = new HashMap<>(reported.attributes());
                    tags = new LinkedHashSet<>(reported.tags());
                }
                attributes.putAll(rule.attributes());
                tags.addAll(rule.tags());
            }
        }
        return attributes == null ? reported : reported.withLabels(attributes, tags);
    }

    public NodeSnapshot apply(NodeSnapshot reported) {
        return rules.isEmpty()
                ? reported
                : reported.withGpus(reported.gpus().stream().map(this::apply).toList());
    }
}
