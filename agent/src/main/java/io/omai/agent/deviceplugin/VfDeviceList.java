package io.omai.agent.deviceplugin;

import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.deviceplugin.v1beta1.NUMANode;
import io.omai.agent.deviceplugin.v1beta1.TopologyInfo;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.inventory.PfStatus;
import io.omai.ibvf.inventory.VfStatus;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import java.util.List;
import java.util.Set;

/**
 * The VF plugin's ListAndWatch list from one inventory: one device per VF, its ID the VF's PCI address, Healthy
 * exactly when the health rules find nothing wrong, and the PF's NUMA node as topology (omitted when the kernel
 * says {@code -1}: unknown is not node 0). VFs of SR-IOV NICs without RDMA are not ours to hand out.
 */
final class VfDeviceList {
    private VfDeviceList() {}

    static ListAndWatchResponse of(InventorySnapshot inventory) {
        return of(inventory, Set.of());
    }

    /** With the VFs DRA claims hold listed Unhealthy, so kubelet never hands them out too (one VF, one path). */
    static ListAndWatchResponse of(InventorySnapshot inventory, Set<PciAddress> heldByClaims) {
        ListAndWatchResponse.Builder list = ListAndWatchResponse.newBuilder();
        for (PfStatus pf : managedPfs(inventory)) {
            Device.Builder template = Device.newBuilder();
            pf.pf()
                    .numaNode()
                    .ifPresent(numa -> template.setTopology(TopologyInfo.newBuilder()
                            .addNodes(NUMANode.newBuilder().setID(numa))));
            for (VfStatus vf : pf.vfs()) {
                list.addDevices(template.setID(vf.vf().address().value())
                        .setHealth(
                                vf.health().isHealthy()
                                                && !heldByClaims.contains(
                                                        vf.vf().address())
                                        ? DeviceListPublisher.HEALTHY
                                        : DeviceListPublisher.UNHEALTHY)
                        .build());
            }
        }
        return list.build();
    }

    /**
     * PFs whose VFs this plugin advertises: InfiniBand PFs (also while their driver is unbound, so their VFs show
     * as Unhealthy rather than vanish) and Ethernet PFs with an RDMA device (RoCE).
     */
    static List<PfStatus> managedPfs(InventorySnapshot inventory) {
        return inventory.pfs().stream()
                .filter(pf -> pf.pf().linkLayer() == LinkLayer.INFINIBAND
                        || pf.pf().rdmaDevice().isPresent())
                .toList();
    }

    static List<VfStatus> managedVfs(InventorySnapshot inventory) {
        return managedPfs(inventory).stream().flatMap(pf -> pf.vfs().stream()).toList();
    }
}
