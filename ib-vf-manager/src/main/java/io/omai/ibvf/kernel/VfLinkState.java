package io.omai.ibvf.kernel;

import java.util.Locale;

/**
 * Administrative link state of a VF, as {@code ip link set <pf> vf N state} names it. mlx5 maps these onto its vport
 * policy: {@code auto}=Follow (the VF port mirrors the PF port), {@code enable}=Up, {@code disable}=Down.
 */
public enum VfLinkState {
    AUTO("Follow"),
    ENABLE("Up"),
    DISABLE("Down");

    private final String mlnxPolicy;

    VfLinkState(String mlnxPolicy) {
        this.mlnxPolicy = mlnxPolicy;
    }

    /** The word {@code ip link} takes. */
    public String ipLinkWord() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The word MLNX_OFED's per-VF {@code policy} sysfs file takes and shows. */
    public String mlnxPolicy() {
        return mlnxPolicy;
    }
}
