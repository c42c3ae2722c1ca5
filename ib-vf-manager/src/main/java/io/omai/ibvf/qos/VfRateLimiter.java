package io.omai.ibvf.qos;

import io.omai.ibvf.error.QosUnsupportedException;
import io.omai.ibvf.error.SysfsMissingException;
import io.omai.ibvf.kernel.IpLink;
import io.omai.ibvf.kernel.SysfsLayout;
import io.omai.ibvf.kernel.TxRate;
import io.omai.ibvf.model.PhysicalFunction;

/** Applies per-VF transmit rates where the link layer enforces them; refuses loudly where it cannot. */
public final class VfRateLimiter {

    private final IpLink ipLink;

    public VfRateLimiter(IpLink ipLink) {
        this.ipLink = ipLink;
    }

    public void apply(PhysicalFunction pf, int vfIndex, TxRate rate) {
        QosCapability capability = QosCapability.of(pf.linkLayer());
        if (rate.maxMbps() > 0 && capability.maxTxRate() instanceof QosCapability.Unsupported(String reason)) {
            throw new QosUnsupportedException("cannot cap VF " + vfIndex + " of " + pf.address() + " at "
                    + rate.maxMbps() + " Mbit/s: " + reason + "; use " + capability.lever());
        }
        if (rate.minMbps() > 0 && capability.minTxRate() instanceof QosCapability.Unsupported(String reason)) {
            throw new QosUnsupportedException("cannot guarantee VF " + vfIndex + " of " + pf.address() + " "
                    + rate.minMbps() + " Mbit/s: " + reason + "; use " + capability.lever());
        }
        if (!capability.perVfRateEnforced()) {
            return; // nothing requested (0/0) and nothing enforceable: there is no limit to clear
        }
        String netdev = pf.netdev()
                .orElseThrow(() -> new SysfsMissingException(
                        SysfsLayout.pciAttribute(pf.address(), "net"), "per-VF rates are set on the PF netdev"));
        ipLink.setVfTxRate(netdev, vfIndex, rate);
    }
}
