package io.omai.agent.schedapi;

import java.util.Objects;

/**
 * Where a device sits in the PCIe tree: its PCI function and the PCIe switch above it (named by the switch's
 * upstream port; the root port where there is no switch). Devices with the same {@code pcieSwitch} exchange data
 * without crossing the CPU's root complex, which is what GPUDirect RDMA placement cares about beyond NUMA.
 *
 * @param pciAddress e.g. 0000:3b:00.0; empty when unknown
 * @param pcieSwitch e.g. 0000:39:00.0; empty when unknown
 */
public record PciePlace(String pciAddress, String pcieSwitch) {
    public static final PciePlace UNKNOWN = new PciePlace("", "");

    public PciePlace {
        Objects.requireNonNull(pciAddress, "pciAddress");
        Objects.requireNonNull(pcieSwitch, "pcieSwitch");
    }
}
