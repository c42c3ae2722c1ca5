package io.omai.agent.deviceplugin;

import io.omai.agent.config.AgentConfig;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.inventory.PfStatus;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.model.PciAddress;
import io.omai.ibvf.model.PhysicalFunction;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Which VF resource offers which PF's VFs, by the {@code ib.resources} selectors (link type, PCI vendor and device
 * ID, PF netdev or RDMA device name), like sriov-network-device-plugin's {@code resourceList}. A PF no selector
 * matches is offered by no resource. A PF two selectors match is offered by neither and reported: handing one VF
 * to two resources could give it to two pods.
 */
final class VfSelection {
    private final List<AgentConfig.VfResource> resources;
    private final Sysfs sysfs;
    // vendor and device IDs never change while a PF exists
    private final Map<PciAddress, String[]> pciIds = new ConcurrentHashMap<>();

    VfSelection(List<AgentConfig.VfResource> resources, Sysfs sysfs) {
        if (resources.isEmpty()) {
            throw new IllegalArgumentException("at least one VF resource is needed");
        }
        this.resources = List.copyOf(resources);
        this.sysfs = sysfs;
    }

    List<AgentConfig.VfResource> resources() {
        return resources;
    }

    /** A PF that more than one resource selects. */
    record Conflict(PciAddress pf, List<String> resources) {
        String describe() {
            return "PF " + pf + " is selected by " + String.join(" and ", resources)
                    + "; expected ib.resources selectors that give each PF to one resource";
        }
    }

    /** Every resource selecting {@code pf}, in configuration order. */
    List<String> resourcesOf(PhysicalFunction pf) {
        String[] ids = pciIds.get(pf.address());
        if (ids == null) {
            ids = readIds(pf.address());
            if (!ids[0].isEmpty() && !ids[1].isEmpty()) {
                pciIds.put(pf.address(), ids);
            }
        }
        Set<String> names = new LinkedHashSet<>();
        pf.netdev().ifPresent(names::add);
        pf.rdmaDevice().ifPresent(names::add);
        List<String> selecting = new ArrayList<>();
        for (AgentConfig.VfResource resource : resources) {
            if (resource.selects(pf.linkLayer(), ids[0], ids[1], names)) {
                selecting.add(resource.name());
            }
        }
        return selecting;
    }

    /** The one resource offering {@code pf}'s VFs; empty when none or several select it. */
    Optional<String> resourceOf(PhysicalFunction pf) {
        List<String> selecting = resourcesOf(pf);
        return selecting.size() == 1 ? Optional.of(selecting.getFirst()) : Optional.empty();
    }

    List<Conflict> conflicts(InventorySnapshot inventory) {
        List<Conflict> conflicts = new ArrayList<>();
        for (PfStatus pf : VfDeviceList.managedPfs(inventory)) {
            List<String> selecting = resourcesOf(pf.pf());
            if (selecting.size() > 1) {
                conflicts.add(new Conflict(pf.pf().address(), selecting));
            }
        }
        return conflicts;
    }

    /** The inventory as {@code resource} sees it: only the PFs it alone selects. */
    InventorySnapshot offeredBy(String resource, InventorySnapshot inventory) {
        return new InventorySnapshot(inventory.pfs().stream()
                .filter(pf -> resourceOf(pf.pf()).map(resource::equals).orElse(false))
                .toList());
    }

    /** Each resource's view of {@code inventory}, in configuration order. */
    Map<String, InventorySnapshot> split(InventorySnapshot inventory) {
        Map<String, InventorySnapshot> views = new LinkedHashMap<>();
        resources.forEach(resource -> views.put(resource.name(), offeredBy(resource.name(), inventory)));
        return views;
    }

    private String[] readIds(PciAddress address) {
        return new String[] {
            hexId(sysfs.read(SysfsLayout.pciAttribute(address, "vendor"))),
            hexId(sysfs.read(SysfsLayout.pciAttribute(address, "device")))
        };
    }

    /** "0x15b3\n" to "15b3"; "" when unreadable (then only selectors without vendors/devices match). */
    private static String hexId(Optional<String> text) {
        String value = text.map(String::strip).orElse("").toLowerCase(Locale.ROOT);
        return value.startsWith("0x") ? value.substring(2) : value;
    }
}
