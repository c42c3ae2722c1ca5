package io.omai.agent.node;

import io.omai.agent.deviceplugin.VfDevicePlugin;
import io.omai.agent.schedapi.ContainerHolding;
import io.omai.agent.schedapi.HcaSnapshot;
import io.omai.ibvf.inventory.PfStatus;
import io.omai.ibvf.inventory.VfStatus;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The VF plugin's state as the scheduler API shows it: each RDMA PF with its VFs, the resource offering them and
 * the ones free (healthy and not held by a container), and which container holds which VFs. Read when the node
 * state is rebuilt (on a VF inventory or allocation change), never on a scheduler's read path.
 */
final class VfStates {
    private final VfDevicePlugin plugin;
    // a PF's place in the PCIe tree does not change while it exists
    private final Map<PciAddress, String> switches = new ConcurrentHashMap<>();

    VfStates(VfDevicePlugin plugin) {
        this.plugin = plugin;
    }

    List<HcaSnapshot> hcas() {
        Set<PciAddress> allocated = plugin.allocatedVfs();
        List<HcaSnapshot> hcas = new ArrayList<>();
        for (PfStatus pf : plugin.monitor().current().pfs()) {
            if (pf.pf().linkLayer() != LinkLayer.INFINIBAND
                    && pf.pf().rdmaDevice().isEmpty()) {
                continue; // an SR-IOV NIC without RDMA: not ours to hand out
            }
            String resource = plugin.resourceOf(pf.pf()).orElse("");
            List<String> vfIds = new ArrayList<>();
            Set<String> free = new LinkedHashSet<>();
            for (VfStatus vf : pf.vfs()) {
                String id = vf.vf().address().value();
                vfIds.add(id);
                if (!resource.isEmpty()
                        && vf.health().isHealthy()
                        && !allocated.contains(vf.vf().address())) {
                    free.add(id);
                }
            }
            List<String> qos = new ArrayList<>();
            if (pf.qos() != null && pf.qos().maxTxRate().enforced()) {
                qos.add("max_tx_rate");
            }
            if (pf.qos() != null && pf.qos().minTxRate().enforced()) {
                qos.add("min_tx_rate");
            }
            hcas.add(new HcaSnapshot(
                    pf.pf().rdmaDevice().orElse(pf.pf().address().value()),
                    pf.pf().address().value(),
                    pf.pf().numaNode().orElse(-1),
                    pf.pf().linkLayer().sysfsName(),
                    vfIds,
                    free,
                    qos,
                    switches.computeIfAbsent(
                            pf.pf().address(), address -> PcieLocations.pcieSwitch(plugin.sysfs(), address)),
                    resource));
        }
        return hcas;
    }

    /** One entry per container holding VFs (namespace/pod/container from PodResources), GPU empty. */
    List<ContainerHolding> holdings() {
        Map<String, List<String>> byOwner = new TreeMap<>();
        plugin.vfOwners()
                .forEach((vf, owner) ->
                        byOwner.computeIfAbsent(owner, o -> new ArrayList<>()).add(vf.value()));
        List<ContainerHolding> holdings = new ArrayList<>();
        byOwner.forEach((owner, vfs) -> {
            String[] parts = owner.split("/", 3);
            if (parts.length == 3) {
                holdings.add(new ContainerHolding(
                        "",
                        parts[0],
                        parts[1],
                        parts[2],
                        "",
                        "",
                        0,
                        0,
                        vfs.stream().sorted().toList()));
            }
        });
        return holdings;
    }
}
