package io.omai.agent.deviceplugin;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.ibvf.model.PciAddress;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Which VFs are handed out, by either path: the one bookkeeper of the VF device plugin and the DRA driver.
 * Device-plugin VFs are recorded at Allocate and compared with what kubelet's PodResources says containers hold
 * (kubelet has no Deallocate): a VF nobody holds is released once it is older than the grace period (kubelet records
 * an allocation only after Allocate returns); one held that we did not record (after an agent restart) is adopted.
 * VFs of DRA claims are recorded at prepare and released at unprepare only (PodResources never lists them), and are
 * checkpointed in {@code checkpoint} (one line per claim: its UID, then its VFs) because nothing else would tell a
 * restarted agent about them. A VF is held by one path and one holder at a time.
 */
final class VfAllocations {
    private final Clock clock;
    private final Path checkpoint; // null: DRA claims are not kept across restarts (tests of the plugin alone)

    @GuardedBy("this")
    private final Map<PciAddress, String> claimedBy = new TreeMap<>();

    @GuardedBy("this")
    private final Map<PciAddress, Instant> allocatedAt = new TreeMap<>();

    private final List<Runnable> listeners = new java.util.concurrent.CopyOnWriteArrayList<>();

    VfAllocations(Clock clock) {
        this.clock = clock;
        this.checkpoint = null;
    }

    /** With DRA claims kept in {@code checkpoint}, read back now (a file that cannot be read fails the start). */
    VfAllocations(Clock clock, Path checkpoint) throws IOException {
        this.clock = clock;
        this.checkpoint = checkpoint;
        if (Files.exists(checkpoint)) {
            int line = 0;
            for (String text : Files.readAllLines(checkpoint, StandardCharsets.UTF_8)) {
                line++;
                if (text.isBlank()) {
                    continue;
                }
                String[] fields = text.strip().split(" ", -1);
                if (fields.length != 2 || fields[0].isEmpty()) {
                    throw new IOException(checkpoint + " line " + line + " is '" + text
                            + "'; expected '<claim uid> <VF PCI address>[,<VF PCI address>...]'");
                }
                for (String vf : fields[1].split(",", -1)) {
                    if (!PciAddress.isPciAddress(vf)) {
                        throw new IOException(checkpoint + " line " + line + " names '" + vf
                                + "', which is not a VF PCI address; expected e.g. 0000:3b:00.1");
                    }
                    synchronized (this) {
                        claimedBy.put(PciAddress.of(vf), fields[0]);
                    }
                }
            }
        }
    }

    /**
     * The device plugin hands {@code vfs} out, unless a DRA claim holds one of them: then nothing is recorded and the
     * refusal names the VF and the claim.
     */
    Optional<String> allocateUnlessClaimed(Collection<PciAddress> vfs) {
        synchronized (this) {
            for (PciAddress vf : vfs) {
                String claim = claimedBy.get(vf);
                if (claim != null) {
                    return Optional.of("VF " + vf + " is held by DRA claim " + claim
                            + "; expected a VF the plugin lists as Healthy (one VF, one path)");
                }
            }
            Instant now = clock.instant();
            vfs.forEach(vf -> allocatedAt.put(vf, now));
        }
        changed();
        return Optional.empty();
    }

    /** Forgets a device-plugin record made by {@link #allocateUnlessClaimed} whose Allocate then failed. */
    void undoAllocated(Collection<PciAddress> vfs) {
        synchronized (this) {
            vfs.forEach(allocatedAt::remove);
        }
        changed();
    }

    /**
     * DRA claim {@code claimUid} holds {@code vfs}, unless the device plugin or another claim holds one of them:
     * then nothing is recorded and the refusal says who holds it. Repeating a claim's own VFs is fine.
     *
     * @return the refusal, or empty when recorded
     */
    Optional<String> claim(String claimUid, Collection<PciAddress> vfs) throws IOException {
        synchronized (this) {
            for (PciAddress vf : vfs) {
                if (allocatedAt.containsKey(vf)) {
                    return Optional.of("VF " + vf + " is handed out by the VF device plugin"
                            + "; expected a VF the slice does not taint " + "omai.io/device-plugin (one VF, one path)");
                }
                String holder = claimedBy.get(vf);
                if (holder != null && !holder.equals(claimUid)) {
                    return Optional.of("VF " + vf + " is held by DRA claim " + holder
                            + "; expected a VF no other claim holds (VFs are not shared)");
                }
            }
            Map<PciAddress, String> before = new TreeMap<>(claimedBy);
            vfs.forEach(vf -> claimedBy.put(vf, claimUid));
            if (!before.equals(claimedBy)) {
                try {
                    writeCheckpoint();
                } catch (IOException e) {
                    claimedBy.clear();
                    claimedBy.putAll(before);
                    throw e;
                }
            }
        }
        changed();
        return Optional.empty();
    }

    /** Releases the VFs of DRA claim {@code claimUid}; the VFs it held (none: unprepared already). */
    List<PciAddress> releaseClaim(String claimUid) throws IOException {
        List<PciAddress> released = new ArrayList<>();
        synchronized (this) {
            claimedBy.forEach((vf, holder) -> {
                if (holder.equals(claimUid)) {
                    released.add(vf);
                }
            });
            if (released.isEmpty()) {
                return released;
            }
            released.forEach(claimedBy::remove);
            try {
                writeCheckpoint();
            } catch (IOException e) {
                released.forEach(vf -> claimedBy.put(vf, claimUid));
                throw e;
            }
        }
        changed();
        return released;
    }

    /** The DRA claim holding each claimed VF. */
    synchronized Map<PciAddress, String> claims() {
        return new TreeMap<>(claimedBy);
    }

    /** The VFs the device plugin handed out (not those of DRA claims). */
    synchronized Set<PciAddress> devicePluginVfs() {
        return new TreeSet<>(allocatedAt.keySet());
    }

    @GuardedBy("this")
    private void writeCheckpoint() throws IOException {
        if (checkpoint == null) {
            return;
        }
        Map<String, List<String>> byClaim = new TreeMap<>();
        claimedBy.forEach((vf, claim) ->
                byClaim.computeIfAbsent(claim, c -> new ArrayList<>()).add(vf.value()));
        StringBuilder text = new StringBuilder();
        byClaim.forEach((claim, vfs) ->
                text.append(claim).append(' ').append(String.join(",", vfs)).append('\n'));
        Files.createDirectories(checkpoint.getParent());
        Path temp = checkpoint.resolveSibling("." + checkpoint.getFileName() + ".tmp");
        Files.deleteIfExists(temp);
        Files.writeString(temp, text, StandardCharsets.UTF_8);
        Files.move(temp, checkpoint, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    /** Runs {@code listener} (outside the lock) after every change of the record. */
    void onChange(Runnable listener) {
        listeners.add(listener);
    }

    private void changed() {
        listeners.forEach(Runnable::run);
    }

    /** Every VF handed out, by the device plugin or to a DRA claim. */
    synchronized Set<PciAddress> current() {
        Set<PciAddress> all = new TreeSet<>(allocatedAt.keySet());
        all.addAll(claimedBy.keySet());
        return all;
    }

    /**
     * Makes the record match kubelet's: {@code heldIds} are every device ID of our resource some container holds.
     *
     * @return the VFs released
     */
    List<PciAddress> reconcile(Collection<String> heldIds, Duration releaseGracePeriod) {
        int before;
        List<PciAddress> released;
        int after;
        synchronized (this) {
            before = allocatedAt.size();
            released = reconcileLocked(heldIds, releaseGracePeriod);
            after = allocatedAt.size();
        }
        if (!released.isEmpty() || before != after) {
            changed();
        }
        return released;
    }

    @GuardedBy("this")
    private List<PciAddress> reconcileLocked(Collection<String> heldIds, Duration releaseGracePeriod) {
        Set<PciAddress> held = new TreeSet<>();
        for (String id : heldIds) {
            if (PciAddress.isPciAddress(id)) {
                held.add(PciAddress.of(id));
            }
        }
        Instant now = clock.instant();
        List<PciAddress> released = new ArrayList<>();
        allocatedAt.entrySet().removeIf(entry -> {
            boolean gone = !held.contains(entry.getKey())
                    && entry.getValue().plus(releaseGracePeriod).isBefore(now);
            if (gone) {
                released.add(entry.getKey());
            }
            return gone;
        });
        held.forEach(vf -> allocatedAt.putIfAbsent(vf, now));
        return released;
    }
}
