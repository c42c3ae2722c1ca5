package io.omai.agent.node;

import io.omai.agent.deviceplugin.RecentGpuAllocation;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.schedapi.PciePlace;
import io.omai.ibvf.alloc.PciTopology;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.model.PciAddress;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where GPUs and HCAs sit in the PCIe tree, for the scheduler API: a GPU's PCI address from the NVIDIA driver's
 * {@code /proc/driver/nvidia/gpus/<BDF>/information}, and for any PCI function the PCIe switch above it, read from
 * the real path of {@code /sys/bus/pci/devices/<BDF>} under {@code /sys/devices}.
 * Unknown stays empty: a missing driver file or sysfs entry costs placement quality, never a start.
 */
final class PcieLocations {
    private static final Logger log = LoggerFactory.getLogger(PcieLocations.class);

    private PcieLocations() {}

    /** Each GPU's place by UUID; GPUs cannot move while the agent runs, so this is read once. */
    static Map<String, PciePlace> ofGpus(List<GpuDevice> gpus, Path nvidiaGpus, Sysfs sysfs) {
        Map<String, PciePlace> places = new HashMap<>();
        for (GpuDevice gpu : gpus) {
            Optional<PciAddress> address = RecentGpuAllocation.pciAddress(nvidiaGpus, gpu.uuid());
            PciePlace place = address.map(a -> new PciePlace(a.value(), pcieSwitch(sysfs, a)))
                    .orElse(PciePlace.UNKNOWN);
            places.put(gpu.uuid(), place);
            log.info(
                    "event=gpu_pcie_place gpu={} pci_address=\"{}\" pcie_switch=\"{}\"",
                    gpu.uuid(),
                    place.pciAddress(),
                    place.pcieSwitch());
        }
        return Map.copyOf(places);
    }

    /**
     * The PCIe switch {@code function} sits under, named by the switch's upstream port (e.g. {@code 0000:39:00.0}
     * in {@code pci0000:38/0000:38:01.0/0000:39:00.0/0000:3a:00.0/<function>}): devices under the same switch
     * exchange data without crossing the CPU's root complex. A function directly under a root port (no switch)
     * gets the root port, one directly under a host bridge the host bridge; empty when sysfs does not know it.
     */
    static String pcieSwitch(Sysfs sysfs, PciAddress function) {
        try {
            if (!sysfs.exists(SysfsLayout.pciDevice(function))) {
                return "";
            }
            // host bridge, root port, then (behind a switch) its upstream port and one of its downstream ports
            List<String> upstream = new PciTopology(sysfs).locate(function).upstream();
            if (upstream.size() >= 4) {
                return upstream.get(2);
            }
            return upstream.isEmpty() ? "" : upstream.getLast();
        } catch (RuntimeException e) {
            log.warn("event=pcie_place_unknown pci_address={} error=\"{}\"", function, e.getMessage());
            return "";
        }
    }
}
