package io.omai.ibvf.report;

import io.omai.ibvf.qos.QosCapability;
import io.omai.ibvf.report.InventoryReport.PfRow;
import io.omai.ibvf.report.InventoryReport.VfRow;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/** Renders an {@link InventoryReport} as aligned text tables, one block per PF; absent values show as {@code -}. */
final class TextReportRenderer {

    private static final List<String> VF_HEADER =
            List.of("VF", "PCI", "RDMA", "UVERBS", "NODE GUID", "PORT GUID", "PORT", "HEALTH");

    String render(InventoryReport report) {
        if (report.pfs().isEmpty()) {
            return "No SR-IOV capable RDMA PFs found.\n";
        }
        StringBuilder out = new StringBuilder();
        for (PfRow pf : report.pfs()) {
            out.append("PF ")
                    .append(pf.pciAddress())
                    .append("  link ")
                    .append(pf.linkLayer())
                    .append("  numa ")
                    .append(text(pf.numaNode()))
                    .append("  netdev ")
                    .append(text(pf.netdev()))
                    .append("  rdma ")
                    .append(text(pf.rdmaDevice()))
                    .append("  port ")
                    .append(text(pf.portState()))
                    .append("  VFs ")
                    .append(pf.numVfs())
                    .append('/')
                    .append(pf.totalVfs())
                    .append('\n');
            out.append("  QoS per-VF max_tx_rate: ")
                    .append(support(pf.qos().maxTxRate()))
                    .append('\n');
            out.append("  QoS per-VF min_tx_rate: ")
                    .append(support(pf.qos().minTxRate()))
                    .append('\n');
            out.append("  QoS lever: ").append(pf.qos().lever()).append('\n');
            if (!pf.vfs().isEmpty()) {
                table(out, pf.vfs());
            }
            out.append('\n');
        }
        return out.toString();
    }

    private static void table(StringBuilder out, List<VfRow> vfs) {
        List<List<String>> rows = new ArrayList<>();
        rows.add(VF_HEADER);
        for (VfRow vf : vfs) {
            rows.add(List.of(
                    Integer.toString(vf.index()),
                    vf.pciAddress(),
                    text(vf.rdmaDevice()),
                    text(vf.uverbs()),
                    text(vf.nodeGuid()),
                    text(vf.portGuid()),
                    text(vf.portState()),
                    vf.healthy() ? "Healthy" : "Unhealthy"));
        }
        int[] widths = new int[VF_HEADER.size()];
        for (List<String> row : rows) {
            for (int column = 0; column < row.size(); column++) {
                widths[column] = Math.max(widths[column], row.get(column).length());
            }
        }
        for (int r = 0; r < rows.size(); r++) {
            List<String> row = rows.get(r);
            StringBuilder line = new StringBuilder("  ");
            for (int column = 0; column < row.size(); column++) {
                line.append(row.get(column))
                        .append(" ".repeat(widths[column] - row.get(column).length() + 2));
            }
            out.append(line.toString().stripTrailing()).append('\n');
            if (r > 0) {
                for (String problem : vfs.get(r - 1).problems()) {
                    out.append("      ! ").append(problem).append('\n');
                }
            }
        }
    }

    private static String support(QosCapability.Support support) {
        return switch (support) {
            case QosCapability.Supported(String mechanism) -> "supported via " + mechanism;
            case QosCapability.Unsupported(String reason) -> "unsupported: " + reason;
        };
    }

    private static String text(Optional<String> value) {
        return value.orElse("-");
    }

    private static String text(OptionalInt value) {
        return value.isPresent() ? Integer.toString(value.getAsInt()) : "-";
    }
}
