package io.omai.ibvf;

import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.kernel.VfLinkState;
import java.util.Objects;

/**
 * Settings of one node's VF manager.
 *
 * @param nodeName   the Kubernetes node name; part of the GUID hash and recorded in the GUID store
 * @param guidRange  the node's block of VF GUIDs, assigned by the cluster operator
 * @param vfLinkState link policy for every VF: {@code auto} (follow the PF port) or {@code enable}
 * @param readiness  how long to wait for VFs, drivers and GUIDs after a change
 */
public record IbVfManagerConfig(
        String nodeName, GuidRange guidRange, VfLinkState vfLinkState, ReadinessPolicy readiness) {

    public IbVfManagerConfig {
        Objects.requireNonNull(guidRange, "guidRange");
        if (nodeName == null || nodeName.isBlank() || nodeName.chars().anyMatch(Character::isWhitespace)) {
            throw new IllegalArgumentException("nodeName '" + nodeName + "' must be a non-empty name without spaces");
        }
        if (vfLinkState == VfLinkState.DISABLE) {
            throw new IllegalArgumentException("vfLinkState 'disable' would advertise VFs that cannot carry traffic; "
                    + "expected 'auto' or 'enable'");
        }
    }
}
