package io.omai.placement;

import java.util.Arrays;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * How strictly tenants are kept apart on this node. Checked whenever GPU capacity is reserved (and, later, when
 * kubelet allocates), so a scheduler that got it wrong is refused instead of trusted.
 */
public enum AntiAffinityPolicy {
    /** Two tenants never share a physical GPU. The default: GPU memory and SM time are not hard-isolated. */
    GPU,
    /** The node runs one tenant's GPU workloads at a time (side channels through PCIe, host memory, NVLink). */
    NODE,
    /** No separation; for clusters with a single tenant or trusted tenants only. */
    NONE;

    public static final AntiAffinityPolicy DEFAULT = GPU;

    /** Parses the configuration form: {@code gpu}, {@code node} or {@code none}, case-insensitive. */
    public static AntiAffinityPolicy parse(String text) {
        if (text != null) {
            for (AntiAffinityPolicy policy : values()) {
                if (policy.configName().equals(text.trim().toLowerCase(Locale.ROOT))) {
                    return policy;
                }
            }
        }
        throw new IllegalArgumentException("anti-affinity policy '" + text + "' is not one of "
                + Arrays.stream(values()).map(AntiAffinityPolicy::configName).collect(Collectors.joining(", ")));
    }

    public String configName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /**
     * Why {@code tenant} may not place work on {@code gpuUuid}, or empty when it may.
     *
     * @param gpuTenants tenants already holding (allocated or reserved) capacity on that GPU
     * @param nodeTenants tenants already holding GPU capacity anywhere on the node
     */
    public Optional<String> refusal(
            String tenant, String gpuUuid, Set<String> gpuTenants, String nodeName, Set<String> nodeTenants) {
        return switch (this) {
            case NONE -> Optional.empty();
            case GPU ->
                firstOther(tenant, gpuTenants)
                        .map(other -> "anti-affinity (policy gpu): tenant '" + tenant + "' may not share GPU " + gpuUuid
                                + " with tenant '" + other + "'");
            case NODE ->
                firstOther(tenant, nodeTenants)
                        .map(other -> "anti-affinity (policy node): tenant '"
                                + tenant + "' may not use node " + nodeName + " while tenant '" + other
                                + "' runs GPU workloads there");
        };
    }

    private static Optional<String> firstOther(String tenant, Set<String> present) {
        return present.stream().filter(other -> !other.equals(tenant)).sorted().findFirst();
    }
}
