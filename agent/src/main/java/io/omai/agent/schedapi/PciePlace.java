package io.omai.agent.schedapi;

import java.util.Objects;

/**
 * Where a device sits in the PCIe tree: its PCI function and the bridge/switch port above it (its parent in
 * {@code /sys/devices}). Devices with the same {@code pcieSwitch} exchange data without crossing the CPU's root
 * complex, which is what GPUDirect RDMA placement cares about beyond the NUMA node.
 *
 * @param pciAddress e.g. 0000:17:00.0; empty when unknown
 * @param pcieSwitch e.g. 0000:16:00.0; empty when unknown
 */
public record PciePlace(String pciAddress, String pcieSwitch) {
    public static final PciePlace UNKNOWN = new PciePlace("", "");

    public PciePlace {
        Objects.requireNonNull(pciAddress, "pciAddress");
        Objects.requireNonNull(pcieSwitch, "pcieSwitch");
    }
}
