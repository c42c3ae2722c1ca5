package io.omai.agent.quota.audit;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * What ties a host process to its container, as the kernel (not the container) says: which file its root shows at
 * {@value #CONTAINER_USAGE_FILE} (the container's bind mount of its allocation's usage file), its cgroup membership
 * and its mount namespace. Every process of a container shares all three with the container's other processes, and
 * a process without capabilities can change none of them (the bind mount cannot be unmounted or replaced, the
 * cgroup tree is read-only in a container, a mount namespace needs {@code CAP_SYS_ADMIN}). A process that wiped
 * its slot in the usage file, or never loaded the shim, still carries them.
 */
@FunctionalInterface
public interface ProcessIdentity {
    /** Where the device plugin mounts the usage file in every container (omai_paths.h, ContainerEdits). */
    String CONTAINER_USAGE_FILE = "/run/omai/usage";

    /**
     * The identities of {@code hostPid}: {@code "usage:…"} (the file its root shows at the container path),
     * {@code "cgroup:…"}, {@code "mntns:…"}; empty when it is gone.
     */
    List<String> of(int hostPid);

    /** The identity a process whose root shows {@code usageFile} at {@value #CONTAINER_USAGE_FILE} has. */
    static Optional<String> ofUsageFile(Path usageFile) {
        try {
            Object key =
                    Files.readAttributes(usageFile, BasicFileAttributes.class).fileKey();
            return key == null ? Optional.empty() : Optional.of("usage:" + key);
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }

    /** The host's: {@code /proc/PID/cgroup} (every hierarchy, as one string) and {@code /proc/PID/ns/mnt}. */
    ProcessIdentity PROC = procfs(Path.of("/proc"));

    /** The same from another proc tree (tests). */
    static ProcessIdentity procfs(Path proc) {
        return pid -> {
            List<String> identities = new ArrayList<>(3);
            Path dir = proc.resolve(Integer.toString(pid));
            ofUsageFile(dir.resolve("root").resolve(CONTAINER_USAGE_FILE.substring(1)))
                    .ifPresent(identities::add);
            try {
                identities.add("cgroup:"
                        + Files.readString(dir.resolve("cgroup"), StandardCharsets.UTF_8)
                                .strip());
            } catch (IOException | RuntimeException e) {
                // gone, or not readable: no identity from there
            }
            try {
                identities.add("mntns:" + Files.readSymbolicLink(dir.resolve("ns/mnt")));
            } catch (IOException | RuntimeException e) {
                // as above
            }
            return identities;
        };
    }
}
