package io.omai.ibvf.kernel;

import io.omai.ibvf.model.Guid;

/**
 * The per-VF settings that upstream kernels only expose through netlink on the PF netdev, i.e. what
 * {@code ip link set <pf> vf N ...} does. Reading VF info back over netlink is deliberately absent: RTM_GETLINK on an
 * IB PF with many VFs overflows the message ("message too long"), so state is read from sysfs instead.
 */
public interface IpLink {

    void setVfGuids(String pfNetdev, int vfIndex, Guid nodeGuid, Guid portGuid);

    void setVfLinkState(String pfNetdev, int vfIndex, VfLinkState state);

    void setVfTxRate(String pfNetdev, int vfIndex, TxRate rate);
}
