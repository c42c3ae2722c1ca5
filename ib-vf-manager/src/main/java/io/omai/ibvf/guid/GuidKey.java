package io.omai.ibvf.guid;

import io.omai.ibvf.model.PciAddress;
import java.util.Comparator;

/** What a GUID is assigned to: VF {@code vfIndex} of PF {@code pf} on this node. */
public record GuidKey(PciAddress pf, int vfIndex) implements Comparable<GuidKey> {

    private static final Comparator<GuidKey> ORDER =
            Comparator.comparing(GuidKey::pf).thenComparingInt(GuidKey::vfIndex);

    public GuidKey {
        if (vfIndex < 0) {
            throw new IllegalArgumentException("VF index must be >= 0, got " + vfIndex);
        }
    }

    @Override
    public int compareTo(GuidKey other) {
        return ORDER.compare(this, other);
    }

    @Override
    public String toString() {
        return "VF " + vfIndex + " of " + pf;
    }
}
