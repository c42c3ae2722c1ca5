package io.omai.ibvf.kernel;

/**
 * Per-VF transmit rate bounds in Mbit/s, as {@code ip link set <pf> vf N max_tx_rate/min_tx_rate} takes them.
 * Zero means "no limit" (max) or "no guarantee" (min).
 */
public record TxRate(int maxMbps, int minMbps) {

    public TxRate {
        if (maxMbps < 0 || minMbps < 0) {
            throw new IllegalArgumentException("tx rates must be >= 0 Mbit/s, got max " + maxMbps + " min " + minMbps);
        }
        if (maxMbps != 0 && minMbps > maxMbps) {
            throw new IllegalArgumentException("min_tx_rate " + minMbps + " exceeds max_tx_rate " + maxMbps);
        }
    }

    public static final TxRate UNLIMITED = new TxRate(0, 0);
}
