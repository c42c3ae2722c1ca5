package io.omai.simulator.node;

import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where a simulated node keeps what the agent and kubelet share, under one root: kubelet's device-plugin
 * directory, its PodResources socket, the agent's state, and the shim and simulated NVML of the native build.
 */
public record SimulatedNodePaths(
        Path root, Path devicePlugins, Path podResourcesSocket, Path state, Path shimLibrary, Path nvmlLibrary) {

    /** The layout under {@code root} for {@code sim}'s native build; creates the device-plugin directory. */
    public static SimulatedNodePaths under(Path root, SimNode sim) {
        try {
            return new SimulatedNodePaths(
                    root,
                    Files.createDirectories(root.resolve("device-plugins")),
                    root.resolve("pod-resources/kubelet.sock"),
                    root.resolve("state"),
                    sim.buildDir().resolve("lib/libomai-shim.so"),
                    sim.buildDir().resolve("sim/libnvidia-ml.so.1"));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + root.resolve("device-plugins"), e);
        }
    }

    /** kubelet's plugin-watcher directory ({@code /var/lib/kubelet/plugins_registry} on a node). */
    public Path pluginsRegistry() {
        return root.resolve("plugins_registry");
    }

    /** A DRA driver's own directory ({@code /var/lib/kubelet/plugins/<driver>}), holding its {@code dra.sock}. */
    public Path draPluginDir(String driver) {
        return root.resolve("plugins").resolve(driver);
    }

    /** Where CDI specs are written ({@code /var/run/cdi} on a node). */
    public Path cdiDir() {
        return root.resolve("cdi");
    }
}
