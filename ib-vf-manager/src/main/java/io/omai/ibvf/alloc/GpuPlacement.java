package io.omai.ibvf.alloc;

import io.omai.ibvf.model.PciAddress;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * A GPU a pod holds: its PCI address when known (then its PCIe position and, if not given, its NUMA node are read
 * from sysfs) and its NUMA node (empty when unknown). A GPU known only by its NUMA node can still rank VFs by NUMA.
 */
public record GpuPlacement(Optional<PciAddress> address, OptionalInt numaNode) {

    public GpuPlacement {
        if (address.isEmpty() && numaNode.isEmpty()) {
            throw new IllegalArgumentException("a GPU placement needs a PCI address or a NUMA node; it has neither");
        }
    }

    public GpuPlacement(PciAddress address, OptionalInt numaNode) {
        this(Optional.of(address), numaNode);
    }

    public static GpuPlacement at(PciAddress address) {
        return new GpuPlacement(Optional.of(address), OptionalInt.empty());
    }

    /** A GPU whose PCI address is not known, only its NUMA node (as NVML reports it). */
    public static GpuPlacement onNumaNode(int numaNode) {
        return new GpuPlacement(Optional.empty(), OptionalInt.of(numaNode));
    }
}
