package io.omai.agent.tenancy;

import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * Who a pod belongs to: the value of a configured label (default {@value #DEFAULT_LABEL}) when the pod has it,
 * else its namespace. A label lets several namespaces form one tenant; the namespace is the boundary Kubernetes
 * itself draws (RBAC, quotas) and so the safe default.
 */
public final class TenantIdentity {
    public static final String DEFAULT_LABEL = "omai.io/tenant";
    /** The tenant of allocations made without knowing the pod (no Kubernetes API, adopted after a restart). */
    public static final String UNKNOWN = "(unknown)";

    // a Kubernetes label key: optional DNS-subdomain prefix and '/', then a name of at most 63 characters
    private static final Pattern LABEL_KEY =
            Pattern.compile("([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                    + "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?");

    private final String label;

    public TenantIdentity(String label) {
        if (!isLabelKey(label)) {
            throw new IllegalArgumentException("'" + label + "' is not a label key; expected e.g. " + DEFAULT_LABEL);
        }
        this.label = label;
    }

    public static boolean isLabelKey(String text) {
        return text != null && text.length() <= 317 && LABEL_KEY.matcher(text).matches();
    }

    public String label() {
        return label;
    }

    /** The tenant of a pod with these labels in this namespace. */
    public String tenantOf(Map<String, String> labels, String namespace) {
        Objects.requireNonNull(namespace, "namespace");
        String value = labels == null ? null : labels.get(label);
        return value == null || value.isBlank() ? namespace : value;
    }
}
