package io.omai.ibvf.qos;

import io.omai.ibvf.model.LinkLayer;

/**
 * What per-VF QoS a PF's link layer can actually enforce. Reported, never silently promised: on InfiniBand the
 * IPoIB PF netdev has no {@code ndo_set_vf_rate} and mlx5 has no E-Switch in IB mode, so there is no per-VF rate
 * limit in upstream Linux; bandwidth sharing there is the subnet manager's SL-to-VL mapping and VL arbitration.
 *
 * @param maxTxRate per-VF transmit ceiling ({@code ip link ... vf N max_tx_rate})
 * @param minTxRate per-VF transmit guarantee ({@code ip link ... vf N min_tx_rate})
 * @param lever     where an operator turns bandwidth policy for this link layer
 */
public record QosCapability(LinkLayer linkLayer, Support maxTxRate, Support minTxRate, String lever) {

    /** Whether a setting is enforced by this node's kernel, and why not when it is not. */
    public sealed interface Support permits Supported, Unsupported {
        boolean enforced();
    }

    public record Supported(String mechanism) implements Support {
        @Override
        public boolean enforced() {
            return true;
        }
    }

    public record Unsupported(String reason) implements Support {
        @Override
        public boolean enforced() {
            return false;
        }
    }

    public static QosCapability of(LinkLayer linkLayer) {
        return switch (linkLayer) {
            case ETHERNET ->
                new QosCapability(
                        linkLayer,
                        new Supported(
                                "ip link set <pf> vf N max_tx_rate <Mbit/s> (E-Switch vport rate limit, TX only)"),
                        new Supported("ip link set <pf> vf N min_tx_rate <Mbit/s> (E-Switch bandwidth share, TX only)"),
                        "per-VF tx rate on the PF (legacy E-Switch), or devlink rate in switchdev mode");
            case INFINIBAND -> {
                Unsupported noVfRate = new Unsupported("InfiniBand PFs have no per-VF rate limit: the IPoIB netdev "
                        + "lacks ndo_set_vf_rate (EOPNOTSUPP) and mlx5 has no E-Switch in IB mode");
                yield new QosCapability(
                        linkLayer,
                        noVfRate,
                        noVfRate,
                        "subnet manager QoS: SL-to-VL tables and VL arbitration weights per partition "
                                + "(opensm qos-policy.conf or UFM); advisory per-QP static rate via PathRecords");
            }
        };
    }

    public boolean perVfRateEnforced() {
        return maxTxRate.enforced();
    }
}
