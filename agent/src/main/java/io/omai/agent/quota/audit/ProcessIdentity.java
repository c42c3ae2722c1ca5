package io.omai.agent.quota.audit;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What ties a host process to its container, as the kernel (not the container) says: its cgroup membership and
 * its mount namespace. Every process of a container shares both with the container's other processes, and a
 * process without capabilities can change neither its cgroup (the cgroup tree is read-only in a container) nor,
 * without a user namespace, its mount namespace. A process that wiped its slot in the usage file, or never loaded
 * the shim, still carries them.
 */
@FunctionalInterface
public interface ProcessIdentity {
    /** The identities of {@code hostPid} ({@code "cgroup:…"}, {@code "mntns:…"}); empty when it is gone. */
    List<String> of(int hostPid);

    /** The host's: {@code /proc/PID/cgroup} (every hierarchy, as one string) and {@code /proc/PID/ns/mnt}. */
    ProcessIdentity PROC = procfs(Path.of("/proc"));

    /** The same from another proc tree (tests). */
    static ProcessIdentity procfs(Path proc) {
        return pid -> {
            List<String> identities = new ArrayList<>(2);
            Path dir = proc.resolve(Integer.toString(pid));
            try {
                identities.add("cgroup:" + Files.readString(dir.resolve("cgroup"), StandardCharsets.UTF_8).strip());
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
