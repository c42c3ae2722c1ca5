package io.omai.ibvf.report;

import io.omai.ibvf.alloc.VfAllocation;
import io.omai.ibvf.alloc.VfDeviceNodeResolver;
import io.omai.ibvf.error.IbVfException;
import io.omai.ibvf.health.VfHealth;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.inventory.PfStatus;
import io.omai.ibvf.inventory.VfStatus;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.model.PortState;
import io.omai.ibvf.model.VirtualFunction;
import io.omai.ibvf.qos.QosCapability;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * What an operator sees about the node's IB SR-IOV state: PFs with link layer, NUMA node and QoS capability, and per VF
 * the PCI address, RDMA device, current {@code uverbs} node, GUIDs and health. Built from one snapshot; the uverbs
 * node is read at build time because it is never part of a snapshot.
 */
public record InventoryReport(List<PfRow> pfs) {

    public InventoryReport {
        pfs = List.copyOf(pfs);
    }

    public record PfRow(
            String pciAddress,
            String linkLayer,
            OptionalInt numaNode,
            Optional<String> netdev,
            Optional<String> rdmaDevice,
            Optional<String> portState,
            int totalVfs,
            int numVfs,
            QosCapability qos,
            List<VfRow> vfs) {
        public PfRow {
            vfs = List.copyOf(vfs);
        }
    }

    public record VfRow(
            int index,
            String pciAddress,
            Optional<String> rdmaDevice,
            Optional<String> uverbs,
            Optional<String> nodeGuid,
            Optional<String> portGuid,
            Optional<String> portState,
            boolean healthy,
            List<String> problems) {
        public VfRow {
            problems = List.copyOf(problems);
        }
    }

    public static InventoryReport of(InventorySnapshot snapshot, Sysfs sysfs) {
        VfDeviceNodeResolver resolver = new VfDeviceNodeResolver(sysfs);
        return new InventoryReport(
                snapshot.pfs().stream().map(pf -> pfRow(pf, resolver)).toList());
    }

    private static PfRow pfRow(PfStatus status, VfDeviceNodeResolver resolver) {
        PhysicalFunction pf = status.pf();
        return new PfRow(
                pf.address().value(),
                pf.linkLayer().sysfsName(),
                pf.numaNode(),
                pf.netdev(),
                pf.rdmaDevice(),
                pf.portState().map(PortState::sysfsText),
                pf.totalVfs(),
                pf.numVfs(),
                status.qos(),
                status.vfs().stream().map(vf -> vfRow(vf, resolver)).toList());
    }

    private static VfRow vfRow(VfStatus status, VfDeviceNodeResolver resolver) {
        VirtualFunction vf = status.vf();
        List<String> problems = status.health() instanceof VfHealth.Unhealthy(List<VfHealth.Problem> list)
                ? list.stream().map(VfHealth.Problem::toString).toList()
                : List.of();
        return new VfRow(
                vf.index(),
                vf.address().value(),
                vf.rdmaDevice(),
                uverbsNow(status, resolver),
                vf.nodeGuid().map(Guid::toIpLinkFormat),
                vf.portGuid().map(Guid::toIpLinkFormat),
                vf.portState().map(PortState::sysfsText),
                status.health().isHealthy(),
                problems);
    }

    private static Optional<String> uverbsNow(VfStatus status, VfDeviceNodeResolver resolver) {
        if (status.vf().rdmaDevice().isEmpty()) {
            return Optional.empty();
        }
        try {
            return Optional.of(resolver.resolve(status.vf().address()).env().get(VfAllocation.ENV_UVERBS));
        } catch (IbVfException notResolvable) {
            return Optional.empty(); // the health column already says why
        }
    }
}
