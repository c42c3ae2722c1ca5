package io.omai.ibvf.inventory;

import io.omai.ibvf.health.VfHealth;
import io.omai.ibvf.model.PciAddress;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Every SR-IOV RDMA PF on the node and its VFs' health, at one discovery. */
public record InventorySnapshot(List<PfStatus> pfs) {

    public static final InventorySnapshot EMPTY = new InventorySnapshot(List.of());

    public InventorySnapshot {
        pfs = List.copyOf(pfs);
    }

    public List<VfStatus> vfs() {
        return pfs.stream().flatMap(pf -> pf.vfs().stream()).toList();
    }

    /** VF PCI address to health: what listeners are notified about when it changes. */
    public Map<PciAddress, VfHealth> healthByVf() {
        Map<PciAddress, VfHealth> health = new LinkedHashMap<>();
        for (VfStatus status : vfs()) {
            health.put(status.vf().address(), status.health());
        }
        return health;
    }
}
