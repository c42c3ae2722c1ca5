package io.omai.agent.metrics;

import io.omai.ibvf.health.VfHealth;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.inventory.PfStatus;
import io.omai.ibvf.inventory.VfStatus;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.model.VirtualFunction;
import io.omai.ibvf.qos.QosCapability;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/** VF inventories as the IB VF monitor reports them, built without sysfs. */
final class VfInventories {
    private VfInventories() {}

    /** An InfiniBand PF with two healthy VFs and a RoCE PF with one unhealthy VF. */
    static InventorySnapshot twoPfs() {
        return new InventorySnapshot(List.of(
                pf("0000:3b:00.0", LinkLayer.INFINIBAND, 2, VfHealth.HEALTHY),
                pf(
                        "0000:5e:00.0",
                        LinkLayer.ETHERNET,
                        1,
                        new VfHealth.Unhealthy(
                                List.of(new VfHealth.Problem(VfHealth.Reason.NO_DRIVER, "no driver bound"))))));
    }

    /** A PF at {@code address} (function 0) with {@code vfs} VFs at functions 2, 3, ... of the same device. */
    static PfStatus pf(String address, LinkLayer linkLayer, int vfs, VfHealth health) {
        PciAddress pf = PciAddress.of(address);
        List<VirtualFunction> functions = new ArrayList<>();
        List<VfStatus> statuses = new ArrayList<>();
        for (int i = 0; i < vfs; i++) {
            VirtualFunction vf = new VirtualFunction(
                    pf,
                    i,
                    PciAddress.of(address.substring(0, 11) + (i + 2)),
                    Optional.of("mlx5_core"),
                    Optional.empty(),
                    Optional.empty(),
                    Optional.empty(),
                    Optional.empty(),
                    Optional.empty());
            functions.add(vf);
            statuses.add(new VfStatus(vf, health));
        }
        PhysicalFunction physical = new PhysicalFunction(
                pf,
                "/sys/bus/pci/devices/" + address,
                linkLayer == LinkLayer.INFINIBAND ? 0x020700 : 0x020000,
                "mlx5_core",
                linkLayer,
                OptionalInt.of(0),
                8,
                vfs,
                "101c",
                Optional.of("ib0"),
                Optional.of("mlx5_0"),
                Optional.empty(),
                List.of(),
                functions);
        return new PfStatus(physical, QosCapability.of(linkLayer), statuses);
    }
}
