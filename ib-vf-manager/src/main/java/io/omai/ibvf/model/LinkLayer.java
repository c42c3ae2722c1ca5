package io.omai.ibvf.model;

import java.util.Optional;

/** What an RDMA port runs on, as {@code ports/<n>/link_layer} spells it. */
public enum LinkLayer {
    INFINIBAND("InfiniBand"),
    ETHERNET("Ethernet");

    private final String sysfsName;

    LinkLayer(String sysfsName) {
        this.sysfsName = sysfsName;
    }

    public String sysfsName() {
        return sysfsName;
    }

    public static Optional<LinkLayer> fromSysfs(String text) {
        for (LinkLayer layer : values()) {
            if (layer.sysfsName.equals(text)) {
                return Optional.of(layer);
            }
        }
        return Optional.empty();
    }
}
