package io.omai.ibvf.health;

import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.Guid;
import java.util.Optional;

/**
 * What a VF should look like: its link policy and, on InfiniBand, the GUID assigned to it (empty when none was
 * assigned, in which case any valid GUID is accepted).
 */
public record DesiredVfState(VfLinkState linkState, Optional<Guid> guid) {

    public DesiredVfState {
        if (linkState == VfLinkState.DISABLE) {
            throw new IllegalArgumentException("a VF offered to pods must be able to carry traffic; "
                    + "desired link state must be auto or enable, not disable");
        }
    }

    public static DesiredVfState anyValidGuid() {
        return new DesiredVfState(VfLinkState.AUTO, Optional.empty());
    }
}
