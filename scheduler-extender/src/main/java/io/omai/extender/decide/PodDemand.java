package io.omai.extender.decide;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.Quantity;
import io.omai.agent.schedapi.expr.DeviceExpression;
import io.omai.agent.schedapi.expr.DeviceExpressions;
import io.omai.agent.schedapi.expr.ExpressionException;
import io.omai.placement.MilliGpu;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * What a pod asks of a node's OMAI devices, read from its spec: per container {@code omai.io/milli-gpu} and
 * {@code omai.io/ib-vf} (limits; requests where no limit is set, as kube-scheduler reads extended resources),
 * the tenant (the tenant label, else the namespace, as the agents decide it) and the resource expression of the
 * {@value #SELECTOR_ANNOTATION} annotation, compiled once and cached.
 *
 * @param containers app containers that ask for GPUs or VFs, in spec order
 * @param initContainers init containers that ask for GPUs or VFs; each runs alone before the app containers, so
 *     each must fit on its own (kube-scheduler's rule: the pod needs the larger of its largest init container
 *     and the sum of its app containers)
 */
public record PodDemand(
        String uid,
        String namespace,
        String name,
        String tenant,
        List<ContainerNeed> containers,
        List<ContainerNeed> initContainers,
        Map<String, String> labels) {
    public static final String MILLI_GPU = "omai.io/milli-gpu";
    public static final String IB_VF = "omai.io/ib-vf";
    public static final String ROCE_VF = "omai.io/roce-vf";
    public static final String SELECTOR_ANNOTATION = "omai.io/gpu-selector";
    public static final String DEFAULT_TENANT_LABEL = "omai.io/tenant";

    public PodDemand {
        Objects.requireNonNull(uid, "uid");
        Objects.requireNonNull(tenant, "tenant");
        containers = List.copyOf(containers);
        initContainers = List.copyOf(initContainers);
        labels = Map.copyOf(labels);
    }

    public PodDemand(
            String uid,
            String namespace,
            String name,
            String tenant,
            List<ContainerNeed> containers,
            List<ContainerNeed> initContainers) {
        this(uid, namespace, name, tenant, containers, initContainers, Map.of());
    }

    /**
     * This pod with the tenant a node whose agent reads {@code tenantLabel} gives it (the node state's
     * tenant_label; "" keeps the extender's own): the label's value, else the namespace.
     */
    public PodDemand underTenantLabel(String tenantLabel) {
        if (tenantLabel.isEmpty() || (labels.isEmpty() && tenant.equals(namespace))) {
            return this;
        }
        String labelled = labels.get(tenantLabel);
        String other = labelled == null || labelled.isBlank() ? namespace : labelled;
        return other.equals(tenant)
                ? this
                : new PodDemand(uid, namespace, name, other, containers, initContainers, labels);
    }

    /**
     * One container's need.
     *
     * @param expression the selector's text; "" for any GPU
     * @param vfResource the resource its VFs are counted in ({@value #IB_VF} or {@value #ROCE_VF})
     */
    public record ContainerNeed(
            String name,
            int milli,
            int vfs,
            String expression,
            Optional<DeviceExpression> selector,
            String vfResource) {
        public ContainerNeed(String name, int milli, int vfs, String expression, Optional<DeviceExpression> selector) {
            this(name, milli, vfs, expression, selector, IB_VF);
        }

        public ContainerNeed {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(vfResource, "vfResource");
            Objects.requireNonNull(expression, "expression");
            Objects.requireNonNull(selector, "selector");
        }
    }

    /**
     * Everything a verdict depends on besides the node (tenant, each container's name, milli, VFs and selector):
     * pods of one shape get the same verdict on the same node state.
     */
    public String shape() {
        var key = new StringBuilder(tenant);
        for (var c : containers) {
            key.append('\u0000')
                    .append(c.name())
                    .append(':')
                    .append(c.milli())
                    .append(':')
                    .append(c.vfs())
                    .append(':')
                    .append(c.expression());
        }
        key.append("\u0000init");
        for (var c : initContainers) {
            key.append('\u0000')
                    .append(c.name())
                    .append(':')
                    .append(c.milli())
                    .append(':')
                    .append(c.vfs())
                    .append(':')
                    .append(c.expression());
        }
        return key.toString();
    }

    /** Whether the pod asks for any OMAI device; a pod that does not fits every node. */
    public boolean wantsDevices() {
        return !containers.isEmpty() || !initContainers.isEmpty();
    }

    public static PodDemand of(Pod pod, String tenantLabel, DeviceExpressions expressions) throws InvalidPodException {
        if (pod == null || pod.getMetadata() == null || pod.getSpec() == null) {
            throw new InvalidPodException("Pod has no metadata or spec; expected a full core/v1 Pod");
        }
        var meta = pod.getMetadata();
        String namespace =
                meta.getNamespace() == null || meta.getNamespace().isEmpty() ? "default" : meta.getNamespace();
        String name = Objects.requireNonNullElse(meta.getName(), "");
        String uid = Objects.requireNonNullElse(meta.getUid(), "");
        Map<String, String> labels = meta.getLabels() == null ? Map.of() : meta.getLabels();
        String labelled = labels.get(tenantLabel);
        String tenant = labelled == null || labelled.isBlank() ? namespace : labelled;
        String expression = meta.getAnnotations() == null
                ? ""
                : meta.getAnnotations().getOrDefault(SELECTOR_ANNOTATION, "").trim();
        Optional<DeviceExpression> selector = Optional.empty();
        if (!expression.isEmpty()) {
            try {
                selector = Optional.of(expressions.compile(expression));
            } catch (ExpressionException e) {
                throw new InvalidPodException("annotation " + SELECTOR_ANNOTATION + " of pod " + namespace + "/" + name
                        + " does not compile"
                        + (e.line() > 0 ? " at line " + e.line() + ", column " + e.column() : "") + ": "
                        + e.getMessage());
            }
        }
        return new PodDemand(
                uid,
                namespace,
                name,
                tenant,
                needs(pod.getSpec().getContainers(), expression, selector, namespace + "/" + name),
                needs(pod.getSpec().getInitContainers(), expression, selector, namespace + "/" + name),
                labels);
    }

    private static List<ContainerNeed> needs(
            List<Container> containers, String expression, Optional<DeviceExpression> selector, String pod)
            throws InvalidPodException {
        var needs = new ArrayList<ContainerNeed>();
        if (containers == null) {
            return needs;
        }
        for (Container container : containers) {
            String where = "pod " + pod + " container '" + container.getName() + "'";
            long milli = amount(container, MILLI_GPU, where);
            long ibVfs = amount(container, IB_VF, where);
            long roceVfs = amount(container, ROCE_VF, where);
            if (ibVfs > 0 && roceVfs > 0) {
                throw new InvalidPodException(where + ": asks for both " + IB_VF + " and " + ROCE_VF
                        + "; expected VFs of one kind per container");
            }
            long vfs = ibVfs + roceVfs;
            String vfResource = roceVfs > 0 ? ROCE_VF : IB_VF;
            if (milli == 0 && vfs == 0) {
                continue;
            }
            if (milli > Integer.MAX_VALUE || !MilliGpu.isValid((int) milli)) {
                throw new InvalidPodException(where + ": " + MILLI_GPU + " "
                        + (milli > Integer.MAX_VALUE ? milli + " is too large" : MilliGpu.describeInvalid((int) milli))
                        + "; expected a share below 1000 or a multiple of 1000 (whole GPUs)");
            }
            if (vfs > 1024) {
                throw new InvalidPodException(where + ": " + vfResource + " " + vfs + " is more than 1024 VFs");
            }
            needs.add(new ContainerNeed(
                    container.getName(),
                    (int) milli,
                    (int) vfs,
                    milli > 0 ? expression : "",
                    milli > 0 ? selector : Optional.empty(),
                    vfResource));
        }
        return needs;
    }

    private static long amount(Container container, String resource, String where) throws InvalidPodException {
        var resources = container.getResources();
        if (resources == null) {
            return 0;
        }
        Quantity quantity =
                resources.getLimits() == null ? null : resources.getLimits().get(resource);
        if (quantity == null && resources.getRequests() != null) {
            quantity = resources.getRequests().get(resource);
        }
        if (quantity == null) {
            return 0;
        }
        BigDecimal value;
        try {
            value = Quantity.getAmountInBytes(quantity);
        } catch (RuntimeException e) {
            throw new InvalidPodException(where + ": " + resource + " '" + quantity + "' is not a quantity");
        }
        try {
            long count = value.toBigIntegerExact().longValueExact();
            if (count < 0) {
                throw new ArithmeticException("negative");
            }
            return count;
        } catch (ArithmeticException e) {
            throw new InvalidPodException(
                    where + ": " + resource + " '" + quantity + "' is not a whole, non-negative count");
        }
    }
}
