package io.omai.placement;

import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * One HCA (InfiniBand/RoCE physical function) and its SR-IOV VFs.
 *
 * @param numaNode -1 when unknown
 * @param vfIds every VF, in the order proposals take them
 * @param freeVfIds the VFs neither allocated nor (where the caller counts them) reserved
 * @param resource the extended resource its VFs are offered as (e.g. omai.io/ib-vf); a demand naming a VF
 *     resource takes VFs only from HCAs offered as that resource
 */
public record HcaState(String name, int numaNode, List<String> vfIds, Set<String> freeVfIds, String resource) {
    public HcaState(String name, int numaNode, List<String> vfIds, Set<String> freeVfIds) {
        this(name, numaNode, vfIds, freeVfIds, "");
    }

    public HcaState {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(resource, "resource");
        vfIds = List.copyOf(vfIds);
        freeVfIds = Set.copyOf(freeVfIds);
        if (!vfIds.containsAll(freeVfIds)) {
            throw new IllegalArgumentException("HCA " + name + ": free VFs " + freeVfIds + " not among " + vfIds);
        }
    }
}
