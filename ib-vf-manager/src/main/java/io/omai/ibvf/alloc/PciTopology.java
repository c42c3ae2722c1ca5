package io.omai.ibvf.alloc;

import io.omai.ibvf.discovery.SysfsValues;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.model.PciAddress;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;

/**
 * Where PCI functions sit in the PCIe tree, from the real path of {@code bus/pci/devices/<BDF>}:
 * {@code devices/pci0000:38/0000:38:01.0/0000:39:00.0/0000:3a:00.0/0000:3b:00.0}. The first element is the host
 * bridge; every later one but the last is a PCI bridge (root port, switch port).
 */
public final class PciTopology {

    private final Sysfs sysfs;
    private final SysfsValues values;

    public PciTopology(Sysfs sysfs) {
        this.sysfs = sysfs;
        this.values = new SysfsValues(sysfs);
    }

    /** @param upstream host bridge first, then each bridge down to (not including) the function itself */
    public record PciLocation(PciAddress address, List<String> upstream, OptionalInt numaNode) {

        /** Number of upstream elements (host bridge and bridges) two functions share. */
        public int sharedUpstream(PciLocation other) {
            int shared = 0;
            while (shared < upstream.size()
                    && shared < other.upstream.size()
                    && upstream.get(shared).equals(other.upstream.get(shared))) {
                shared++;
            }
            return shared;
        }

        /** Behind a common PCI bridge (a switch, or the same root port), not merely the same host bridge. */
        public boolean sharesPcieBridgeWith(PciLocation other) {
            return sharedUpstream(other) >= 2;
        }
    }

    public PciLocation locate(PciAddress address) {
        String canonical = sysfs.canonicalPath(SysfsLayout.pciDevice(address));
        List<String> elements = Arrays.stream(canonical.split("/"))
                .dropWhile(element -> !element.startsWith("pci"))
                .toList();
        List<String> upstream = elements.isEmpty() ? List.of() : elements.subList(0, elements.size() - 1);
        return new PciLocation(address, upstream, values.numaNode(SysfsLayout.pciAttribute(address, "numa_node")));
    }
}
