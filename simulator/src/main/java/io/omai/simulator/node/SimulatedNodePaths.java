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
}
