package io.omai.ibvf.alloc;

import io.omai.ibvf.model.PciAddress;

import java.util.OptionalInt;

/** A GPU a pod holds: its PCI address and NUMA node (empty when unknown; it is then read from sysfs). */
public record GpuPlacement(PciAddress address, OptionalInt numaNode) {

    public static GpuPlacement at(PciAddress address) {
        return new GpuPlacement(address, OptionalInt.empty());
    }
}
