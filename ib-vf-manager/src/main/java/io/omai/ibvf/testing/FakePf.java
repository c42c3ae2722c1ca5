package io.omai.ibvf.testing;

import io.omai.ibvf.kernel.TxRate;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.LinkLayer;
import io.omai.ibvf.model.PciAddress;
import java.util.HashMap;
import java.util.Map;

/**
 * Handle on one fake ConnectX PF, plus what the mlx5 driver keeps in memory for its VFs (GUIDs, link policy, rates).
 * That memory is lost on a driver reload, exactly as on a real node.
 */
public final class FakePf {

    private final PciAddress address;
    private final LinkLayer linkLayer;
    private final String directory;
    private final String netdev;
    private final int numaNode;
    private final int totalVfs;
    private final boolean mlnxSriovFiles;
    final Map<Integer, Guid> vfNodeGuids = new HashMap<>();
    final Map<Integer, Guid> vfPortGuids = new HashMap<>();
    final Map<Integer, VfLinkState> vfLinkStates = new HashMap<>();
    final Map<Integer, TxRate> vfTxRates = new HashMap<>();

    FakePf(
            PciAddress address,
            LinkLayer linkLayer,
            String directory,
            String netdev,
            int numaNode,
            int totalVfs,
            boolean mlnxSriovFiles) {
        this.address = address;
        this.linkLayer = linkLayer;
        this.directory = directory;
        this.netdev = netdev;
        this.numaNode = numaNode;
        this.totalVfs = totalVfs;
        this.mlnxSriovFiles = mlnxSriovFiles;
    }

    public PciAddress address() {
        return address;
    }

    public LinkLayer linkLayer() {
        return linkLayer;
    }

    /** Canonical directory relative to the fake root, e.g. {@code devices/pci0000:38/.../0000:3b:00.0}. */
    public String directory() {
        return directory;
    }

    public String parentDirectory() {
        return directory.substring(0, directory.lastIndexOf('/'));
    }

    public String netdev() {
        return netdev;
    }

    public int numaNode() {
        return numaNode;
    }

    public int totalVfs() {
        return totalVfs;
    }

    public boolean hasMlnxSriovFiles() {
        return mlnxSriovFiles;
    }

    /** The VF's PCI address: PF devfn + sriov_offset (1) + index * sriov_stride (1), ARI numbering. */
    public PciAddress vfAddress(int index) {
        int devfn = 1 + index;
        return PciAddress.of("%s:%02x.%d".formatted(address.value().substring(0, 7), devfn >>> 3, devfn & 7));
    }

    public String vfNetdev(int index) {
        return linkLayer == LinkLayer.INFINIBAND ? netdev + "v" + index : netdev.replace("np0", "v" + index);
    }

    /** The node GUID the driver holds for a VF (applied to sysfs only on the VF's next bind). */
    public Guid configuredNodeGuid(int vfIndex) {
        return vfNodeGuids.getOrDefault(vfIndex, Guid.ZERO);
    }

    public VfLinkState configuredLinkState(int vfIndex) {
        return vfLinkStates.getOrDefault(vfIndex, VfLinkState.AUTO);
    }

    public TxRate configuredTxRate(int vfIndex) {
        return vfTxRates.getOrDefault(vfIndex, TxRate.UNLIMITED);
    }

    void forgetDriverMemory() {
        vfNodeGuids.clear();
        vfPortGuids.clear();
        vfLinkStates.clear();
        vfTxRates.clear();
    }

    @Override
    public String toString() {
        return address + " (" + linkLayer.sysfsName() + ")";
    }
}
