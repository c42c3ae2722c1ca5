package io.omai.ibvf.config;

import io.omai.ibvf.error.SysfsMissingException;
import io.omai.ibvf.kernel.IpLink;
import io.omai.ibvf.kernel.Sysfs;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.PhysicalFunction;
import io.omai.ibvf.model.VirtualFunction;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gives an IB VF its GUID (node GUID = port GUID, as the operator and ib-sriov-cni do) and link policy, then rebinds
 * it so the VF driver picks them up, and waits until sysfs shows the new GUID. Uses MLNX_OFED's per-VF
 * {@code sriov/<n>/{node,port,policy}} files when the PF has them, else {@code ip link set <pf> vf N ...}.
 */
public final class VfGuidConfigurator {

    private static final Logger log = LoggerFactory.getLogger(VfGuidConfigurator.class);
    private static final String DEFAULT_DRIVER = "mlx5_core";

    private final Sysfs sysfs;
    private final IpLink ipLink;
    private final RebindLock rebindLock;
    private final BoundedWait wait;

    public VfGuidConfigurator(Sysfs sysfs, IpLink ipLink, RebindLock rebindLock, BoundedWait wait) {
        this.sysfs = sysfs;
        this.ipLink = ipLink;
        this.rebindLock = rebindLock;
        this.wait = wait;
    }

    public void apply(PhysicalFunction pf, VirtualFunction vf, Guid guid, VfLinkState linkState) {
        if (!guid.isAssignable()) {
            throw new IllegalArgumentException("refusing to set GUID " + guid + " on " + vf.address()
                    + ": all-zero and all-ones GUIDs are invalid");
        }
        String mlnxDir = SysfsLayout.mlnxVfConfig(pf.address(), vf.index());
        if (sysfs.exists(mlnxDir + "/node")) {
            sysfs.write(mlnxDir + "/node", guid.toIpLinkFormat());
            sysfs.write(mlnxDir + "/port", guid.toIpLinkFormat());
            sysfs.write(mlnxDir + "/policy", linkState.mlnxPolicy());
        } else {
            String netdev = pf.netdev()
                    .orElseThrow(() -> new SysfsMissingException(
                            SysfsLayout.pciAttribute(pf.address(), "net"),
                            "VF GUIDs are set through the PF's IPoIB netdev and " + pf.address() + " has none"));
            ipLink.setVfGuids(netdev, vf.index(), guid, guid);
            ipLink.setVfLinkState(netdev, vf.index(), linkState);
        }
        String driver = vf.driver().orElse(DEFAULT_DRIVER);
        rebindLock.runExclusively(() -> {
            if (sysfs.exists(SysfsLayout.pciAttribute(vf.address(), "driver"))) {
                sysfs.write(SysfsLayout.driverUnbind(driver), vf.address().value());
            }
            sysfs.write(SysfsLayout.driverBind(driver), vf.address().value());
            wait.until(
                    "VF " + vf.index() + " (" + vf.address() + ") of " + pf.address() + " after rebind",
                    () -> guidNotVisible(vf, guid));
        });
        log.info(
                "pf={} vf={} pci={} guid={} state={} applied and rebound",
                pf.address(),
                vf.index(),
                vf.address(),
                guid,
                linkState.ipLinkWord());
    }

    private Optional<String> guidNotVisible(VirtualFunction vf, Guid guid) {
        Optional<String> rdma =
                sysfs.list(SysfsLayout.rdmaDevices(vf.address())).stream().findFirst();
        if (rdma.isEmpty()) {
            return Optional.of("no RDMA device under " + SysfsLayout.rdmaDevices(vf.address()));
        }
        String path = SysfsLayout.rdmaDevice(vf.address(), rdma.get()) + "/node_guid";
        Optional<String> shown = sysfs.read(path);
        if (shown.flatMap(Guid::parse).filter(guid::equals).isEmpty()) {
            return Optional.of(path + " shows '" + shown.orElse("<absent>") + "', expected " + guid.toSysfsFormat());
        }
        return Optional.empty();
    }
}
