package io.omai.simulator.launcher;

import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Starts a "container" the way a runtime would apply a device plugin's Allocate response or a DRA driver's CDI
 * devices ({@link ContainerEdits}), for tests.
 *
 * <ul>
 *   <li>{@link Isolation#MOUNT_NAMESPACE} (root only): a private mount namespace ({@code unshare --mount
 *       --propagation private}) in which every mount of the response is bind-mounted at its container path,
 *       read-only where asked ({@code mount -o remount,bind,ro}). Where a container path does not exist on the
 *       host, its nearest existing directory is covered by an overlay inside the namespace, so nothing on the
 *       host changes. The shim arrives through the mounted {@code /etc/ld.so.preload}, as in a real pod.</li>
 *   <li>{@link Isolation#HOST_PATHS} (anyone): no mounts; the response's env is applied with
 *       {@code OMAI_CONTROL_FILE}/{@code OMAI_USAGE_FILE} pointing at the host files and the shim through
 *       {@code LD_PRELOAD}.</li>
 * </ul>
 * Device specs whose host node does not exist (simulated GPUs have none) are not created; {@link Launch#skippedDevices}
 * lists them.
 */
public final class ContainerLauncher {
    /** How the allocation is applied. */
    public enum Isolation {
        MOUNT_NAMESPACE,
        HOST_PATHS
    }

    /** A prepared container process. */
    public record Launch(ProcessBuilder process, List<String> skippedDevices) {}

    private static final String LD_SO_PRELOAD = "/etc/ld.so.preload";

    private final Path scratch;
    private int launches;

    /** @param scratch a directory of the test's for overlay upper/work directories */
    public ContainerLauncher(Path scratch) {
        this.scratch = scratch;
    }

    /** Empty when this process may create mount namespaces, else why not (for a JUnit assumption). */
    public static Optional<String> mountNamespaceUnavailable() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("Uid:")) {
                    String effective = line.substring(4).trim().split("\\s+", -1)[1];
                    if (!effective.equals("0")) {
                        return Optional.of("mount namespaces need root (effective uid " + effective
                                + "); CI runs these tests as root");
                    }
                }
            }
        } catch (IOException e) {
            return Optional.of("cannot read /proc/self/status: " + e.getMessage());
        }
        if (!Files.isExecutable(Path.of("/usr/bin/unshare")) && !Files.isExecutable(Path.of("/bin/unshare"))) {
            return Optional.of("unshare (util-linux) is not installed");
        }
        return Optional.empty();
    }

    /**
     * Prepares {@code command} as a container holding {@code allocation}, a device plugin's Allocate response.
     *
     * @param runtimeEnv what the image/runtime adds (PATH, the simulator's variables, ...); the response's env wins
     */
    public Launch prepare(
            ContainerAllocateResponse allocation,
            Isolation isolation,
            Map<String, String> runtimeEnv,
            List<String> command) {
        return prepare(ContainerEdits.of(allocation), isolation, runtimeEnv, command);
    }

    /**
     * Prepares {@code command} as a container with {@code edits} applied, as a runtime applies an Allocate
     * response or the CDI devices a DRA driver named.
     *
     * @param runtimeEnv what the image/runtime adds (PATH, the simulator's variables, ...); the edits' env wins
     */
    public Launch prepare(
            ContainerEdits edits, Isolation isolation, Map<String, String> runtimeEnv, List<String> command) {
        List<String> skipped = new ArrayList<>();
        for (ContainerEdits.DeviceNode device : edits.deviceNodes()) {
            if (!Files.exists(Path.of(device.hostPath()))) {
                skipped.add(device.containerPath());
            }
        }
        Map<String, String> env = new LinkedHashMap<>(runtimeEnv);
        env.putAll(edits.env());
        ProcessBuilder builder;
        if (isolation == Isolation.MOUNT_NAMESPACE) {
            Optional<String> unavailable = mountNamespaceUnavailable();
            if (unavailable.isPresent()) {
                throw new IllegalStateException("cannot use a mount namespace: " + unavailable.get());
            }
            List<String> argv = new ArrayList<>(List.of(
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "/bin/sh",
                    "-c",
                    namespaceScript(edits, skipped),
                    "omai-container"));
            argv.addAll(command);
            builder = new ProcessBuilder(argv);
        } else {
            Map<String, String> hostPathOf = new HashMap<>();
            for (ContainerEdits.BindMount mount : edits.mounts()) {
                hostPathOf.put(mount.containerPath(), mount.hostPath());
            }
            env.replaceAll((key, value) -> hostPathOf.getOrDefault(value, value));
            preloadedLibrary(edits)
                    .map(library -> hostPathOf.getOrDefault(library, library))
                    .ifPresent(library -> env.put("LD_PRELOAD", library));
            builder = new ProcessBuilder(command);
        }
        builder.environment().clear();
        builder.environment().putAll(env);
        return new Launch(builder, List.copyOf(skipped));
    }

    /** The library named in the mounted ld.so.preload (the last mount there wins), as a container path. */
    private static Optional<String> preloadedLibrary(ContainerEdits edits) {
        Optional<String> library = Optional.empty();
        for (ContainerEdits.BindMount mount : edits.mounts()) {
            if (mount.containerPath().equals(LD_SO_PRELOAD)) {
                try {
                    library = Files.readAllLines(Path.of(mount.hostPath()), StandardCharsets.US_ASCII).stream()
                            .map(String::trim)
                            .filter(line -> !line.isEmpty())
                            .findFirst();
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot read " + mount.hostPath(), e);
                }
            }
        }
        return library;
    }

    private String namespaceScript(ContainerEdits edits, List<String> skippedDevices) {
        int launch = ++launches;
        List<String> targets = new ArrayList<>();
        Map<String, String> hostOf = new LinkedHashMap<>();
        Map<String, Boolean> readOnly = new HashMap<>();
        for (ContainerEdits.BindMount mount : edits.mounts()) {
            targets.add(mount.containerPath());
            hostOf.put(mount.containerPath(), mount.hostPath());
            readOnly.put(mount.containerPath(), mount.readOnly());
        }
        for (ContainerEdits.DeviceNode device : edits.deviceNodes()) {
            if (!skippedDevices.contains(device.containerPath())) {
                targets.add(device.containerPath());
                hostOf.put(device.containerPath(), device.hostPath());
                readOnly.put(device.containerPath(), false);
            }
        }
        Set<Path> overlayRoots = new LinkedHashSet<>();
        for (String target : targets) {
            Path path = Path.of(target);
            if (Files.exists(path)) {
                continue;
            }
            Path existing = path.getParent();
            while (existing != null && !Files.isDirectory(existing)) {
                existing = existing.getParent();
            }
            if (existing == null || existing.getParent() == null) {
                throw new IllegalStateException("cannot make room for " + target + " without covering /");
            }
            overlayRoots.add(existing);
        }
        StringBuilder script = new StringBuilder("set -e\n");
        int n = 0;
        for (Path root : overlayRoots) {
            Path upper = scratch.resolve("launch-" + launch + "/upper-" + n);
            Path work = scratch.resolve("launch-" + launch + "/work-" + n);
            try {
                Files.createDirectories(upper);
                Files.createDirectories(work);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot prepare overlay directories in " + scratch, e);
            }
            script.append("mount -t overlay omai-overlay -o ")
                    .append(quote("lowerdir=" + root + ",upperdir=" + upper + ",workdir=" + work))
                    .append(' ')
                    .append(quote(root.toString()))
                    .append('\n');
            n++;
        }
        for (String target : targets) {
            String host = hostOf.get(target);
            if (Files.isDirectory(Path.of(host))) {
                script.append("mkdir -p ").append(quote(target)).append('\n');
            } else {
                script.append("mkdir -p ")
                        .append(quote(Path.of(target).getParent().toString()))
                        .append('\n');
                script.append("[ -e ")
                        .append(quote(target))
                        .append(" ] || touch ")
                        .append(quote(target))
                        .append('\n');
            }
            script.append("mount --bind ")
                    .append(quote(host))
                    .append(' ')
                    .append(quote(target))
                    .append('\n');
            if (readOnly.get(target)) {
                script.append("mount -o remount,bind,ro ").append(quote(target)).append('\n');
            }
        }
        script.append("exec \"$@\"\n");
        return script.toString();
    }

    private static String quote(String text) {
        return "'" + text.replace("'", "'\\''") + "'";
    }
}
