package io.omai.ibvf.guid;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.ibvf.error.GuidAssignmentException;
import io.omai.ibvf.model.Guid;
import io.omai.ibvf.model.PciAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Collection;
import java.util.HashSet;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * Gives each VF a GUID from the node's range, deterministically: the first choice is a hash of (node, PF, VF index)
 * into the range, so a lost store still yields the same GUIDs on the same node; collisions move to the next free value.
 * Once given, a GUID is persisted and returned unchanged for as long as the store lives. Never zero or all-ones,
 * never one another PCI function on this node shows, never one already given to another VF.
 */
public final class GuidAllocator {

    private final String nodeName;
    private final GuidRange range;
    private final GuidStore store;

    @GuardedBy("this")
    private final Map<GuidKey, Guid> assignments;

    public GuidAllocator(String nodeName, GuidRange range, GuidStore store) {
        this.nodeName = nodeName;
        this.range = range;
        this.store = store;
        this.assignments = new TreeMap<>(store.load(nodeName));
    }

    /** A GUID seen in sysfs, with the PCI function that shows it. */
    public record ObservedGuid(Guid guid, PciAddress shownBy) {}

    /**
     * The GUID for VF {@code vfIndex} of {@code pf}.
     *
     * @param vfAddress the VF's PCI address; GUIDs it shows itself are not conflicts
     * @param observed  every node/port GUID visible on the node (PFs and VFs)
     */
    public synchronized Guid assign(
            PciAddress pf, int vfIndex, PciAddress vfAddress, Collection<ObservedGuid> observed) {
        GuidKey key = new GuidKey(pf, vfIndex);
        Set<Guid> takenByOthers = new HashSet<>();
        for (ObservedGuid seen : observed) {
            if (!seen.shownBy().equals(vfAddress)) {
                takenByOthers.add(seen.guid());
            }
        }
        Guid existing = assignments.get(key);
        if (existing != null) {
            if (takenByOthers.contains(existing)) {
                throw new GuidAssignmentException("GUID " + existing + " persisted for " + key + " is also shown by "
                        + ownerOf(existing, observed, vfAddress) + "; refusing to create a duplicate on the subnet");
            }
            return existing;
        }
        assignments.forEach((otherKey, guid) -> takenByOthers.add(guid));
        Guid chosen = firstFree(key, takenByOthers);
        assignments.put(key, chosen);
        store.save(nodeName, assignments);
        return chosen;
    }

    public synchronized Optional<Guid> assigned(PciAddress pf, int vfIndex) {
        return Optional.ofNullable(assignments.get(new GuidKey(pf, vfIndex)));
    }

    public synchronized Map<GuidKey, Guid> assignments() {
        return Map.copyOf(assignments);
    }

    private Guid firstFree(GuidKey key, Set<Guid> taken) {
        long size = range.size();
        long start = Long.remainderUnsigned(hash(key), size);
        for (long step = 0; step < size; step++) {
            Guid candidate = range.at((start + step) % size);
            if (candidate.isAssignable() && !taken.contains(candidate)) {
                return candidate;
            }
        }
        throw new GuidAssignmentException(
                "GUID range " + range + " of node '" + nodeName + "' has no free GUID left for " + key + " ("
                        + taken.size() + " in use); give the node a larger range");
    }

    private long hash(GuidKey key) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            byte[] digest =
                    sha.digest((nodeName + "|" + key.pf() + "|" + key.vfIndex()).getBytes(StandardCharsets.UTF_8));
            return ByteBuffer.wrap(digest).getLong();
        } catch (NoSuchAlgorithmException impossible) {
            throw new IllegalStateException("SHA-256 is required of every Java platform", impossible);
        }
    }

    private static String ownerOf(Guid guid, Collection<ObservedGuid> observed, PciAddress except) {
        return observed.stream()
                .filter(seen -> seen.guid().equals(guid) && !seen.shownBy().equals(except))
                .map(seen -> seen.shownBy().value())
                .findFirst()
                .orElse("another device");
    }
}
