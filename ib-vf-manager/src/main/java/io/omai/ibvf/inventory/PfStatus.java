package io.omai.ibvf.inventory;

import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.qos.QosCapability;
import java.util.List;

/** A PF, its QoS capability and the health of each of its VFs. */
public record PfStatus(PhysicalFunction pf, QosCapability qos, List<VfStatus> vfs) {

    public PfStatus {
        vfs = List.copyOf(vfs);
    }
}
