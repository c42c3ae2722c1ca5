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
 * {@code /proc/driver/nvidia/gpus/<BDF>/information}, and for any PCI function the bridge/switch port above it, read
 * from the real path of {@code /sys/bus/pci/devices/<BDF>} (its parent directory under {@code /sys/devices}).
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
            PciePlace place = address.map(a -> new PciePlace(a.value(), upstreamBridge(sysfs, a)))
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
     * The bridge or switch port directly above {@code function} (e.g. {@code 0000:16:00.0}), or its host bridge
     * (e.g. {@code pci0000:16}) when it hangs off that; empty when sysfs does not know the function.
     */
    static String upstreamBridge(Sysfs sysfs, PciAddress function) {
        try {
            if (!sysfs.exists(SysfsLayout.pciDevice(function))) {
                return "";
            }
            List<String> upstream = new PciTopology(sysfs).locate(function).upstream();
            return upstream.isEmpty() ? "" : upstream.getLast();
        } catch (RuntimeException e) {
            log.warn("event=pcie_place_unknown pci_address={} error=\"{}\"", function, e.getMessage());
            return "";
        }
    }
}
