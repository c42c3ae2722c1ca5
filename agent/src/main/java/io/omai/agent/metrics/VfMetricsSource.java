package io.omai.agent.metrics;

import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.model.PciAddress;
import java.util.Set;

/**
 * What {@link VfMetrics} shows about InfiniBand/RoCE SR-IOV VFs, asked once per scrape: the VF manager's latest
 * inventory ({@code IbVfMonitor::current}: PFs, VFs, health, QoS capability) and which VFs are handed out.
 */
public interface VfMetricsSource {
    /** The inventory as of the monitor's last poll. */
    InventorySnapshot inventory();

    /** PCI addresses of the VFs allocated to containers now. */
    Set<PciAddress> allocatedVfs();
}
