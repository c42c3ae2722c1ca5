package io.omai.agent.node;

import io.omai.agent.deviceplugin.RecentGpuAllocation;
import io.omai.agent.dra.DevicePlaces;
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
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;
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

    private static final Pattern PCIE_ROOT = Pattern.compile("pci[0-9a-f]{4}:[0-9a-f]{2}");

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
     * The DRA slices' view: each GPU's PCI address (read once, as {@link #ofGpus} does, without its logs) and the
     * PCIe root of any function, read from sysfs once per function (a function does not move while it exists).
     */
    static DevicePlaces forDra(List<GpuDevice> gpus, Path nvidiaGpus, Sysfs sysfs) {
        Map<String, String> busIds = new HashMap<>();
        for (GpuDevice gpu : gpus) {
            RecentGpuAllocation.pciAddress(nvidiaGpus, gpu.uuid()).ifPresent(a -> busIds.put(gpu.uuid(), a.value()));
        }
        Map<String, String> roots = new ConcurrentHashMap<>();
        return new DevicePlaces() {
            @Override
            public String pciBusId(String gpuUuid) {
                return busIds.getOrDefault(gpuUuid, "");
            }

            @Override
            public String pcieRoot(String pciAddress) {
                if (!PciAddress.isPciAddress(pciAddress)) {
                    return "";
                }
                String known = roots.get(pciAddress);
                if (known != null) {
                    return known;
                }
                String root = PcieLocations.pcieRoot(sysfs, PciAddress.of(pciAddress));
                if (!root.isEmpty()) {
                    roots.put(pciAddress, root);
                }
                return root;
            }
        };
    }

    /**
     * The PCIe root complex {@code function} sits under, as the standard DRA attribute
     * {@code resource.kubernetes.io/pcieRoot} names it: {@code pci<domain>:<bus>}, the host bridge's directory under
     * {@code /sys/devices} (e.g. {@code pci0000:38} in {@code pci0000:38/0000:38:01.0/<function>}); empty when sysfs
     * does not know the function.
     */
    static String pcieRoot(Sysfs sysfs, PciAddress function) {
        try {
            if (!sysfs.exists(SysfsLayout.pciDevice(function))) {
                return "";
            }
            List<String> upstream = new PciTopology(sysfs).locate(function).upstream();
            return !upstream.isEmpty() && PCIE_ROOT.matcher(upstream.getFirst()).matches() ? upstream.getFirst() : "";
        } catch (RuntimeException e) {
            log.warn("event=pcie_root_unknown pci_address={} error=\"{}\"", function, e.getMessage());
            return "";
        }
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
