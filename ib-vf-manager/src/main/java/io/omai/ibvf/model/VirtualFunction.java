package io.omai.ibvf.model;

import java.util.Optional;

/**
 * One VF as sysfs shows it right now. The RDMA device and GUIDs are absent while no driver is bound; the
 * {@code uverbsN} node is deliberately not part of this snapshot: it is renumbered by every rebind, so it is
 * resolved at allocation time by {@link io.omai.ibvf.alloc.VfDeviceNodeResolver}.
 *
 * @param portGuid  from {@code ports/1/gids/0} (subnet prefix + port GUID)
 * @param portState the VF's own IB port state ({@code 1: DOWN} until the SM activates the virtual port)
 */
public record VirtualFunction(
        PciAddress pf,
        int index,
        PciAddress address,
        Optional<String> driver,
        Optional<String> netdev,
        Optional<String> rdmaDevice,
        Optional<Guid> nodeGuid,
        Optional<Guid> portGuid,
        Optional<PortState> portState) {}
