package io.omai.harness.launcher;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The configuration an agent on a simulated node runs with: the part every such node shares (its directories,
 * the built shim, the simulated NVML) written in one place, and each test's own keys beside it. Sections and keys
 * come out in the order they were first set, each once: the loader refuses a key written twice.
 */
public final class AgentYaml {
    private final Map<String, String> top = new LinkedHashMap<>();
    private final Map<String, Map<String, String>> sections = new LinkedHashMap<>();

    private AgentYaml() {}

    /**
     * @param buildDir the native build ({@code SimNode.buildDir()}): {@code lib/libomai-shim.so} and
     *                 {@code sim/libnvidia-ml.so.1}
     */
    public static AgentYaml simulatedNode(String nodeName, Path devicePlugins, Path podResources, Path state,
                                          Path buildDir) {
        AgentYaml yaml = new AgentYaml();
        yaml.top.put("version", "1");
        yaml.top.put("nodeName", nodeName);
        return yaml.set("directories", "devicePlugin", devicePlugins)
                .set("directories", "podResourcesSocket", podResources)
                .set("directories", "state", state)
                .set("shim", "hostLibrary", buildDir.resolve("lib/libomai-shim.so"))
                .set("nvml", "library", buildDir.resolve("sim/libnvidia-ml.so.1"));
    }

    /** Sets {@code section.key} (replacing an earlier value); {@code value} is written as its string, unquoted. */
    public AgentYaml set(String section, String key, Object value) {
        sections.computeIfAbsent(section, s -> new LinkedHashMap<>()).put(key, String.valueOf(value));
        return this;
    }

    /** The metrics server on a free loopback port. */
    public AgentYaml metricsOnFreePort() {
        return set("metrics", "address", "127.0.0.1").set("metrics", "port", freeLoopbackPort());
    }

    /** The scheduler API on {@code port} of the loopback address. */
    public AgentYaml schedulerApiOn(int port) {
        return set("schedulerApi", "address", "127.0.0.1").set("schedulerApi", "port", port);
    }

    public String text() {
        StringBuilder out = new StringBuilder();
        top.forEach((key, value) -> out.append(key).append(": ").append(value).append('\n'));
        sections.forEach((section, keys) -> {
            out.append(section).append(":\n");
            keys.forEach((key, value) -> out.append("  ").append(key).append(": ").append(value).append('\n'));
        });
        return out.toString();
    }

    /** Writes {@link #text} to {@code file}, followed by {@code extra} as written (more top-level keys). */
    public Path write(Path file, String extra) throws IOException {
        Files.writeString(file, text() + extra);
        return file;
    }

    public Path write(Path file) throws IOException {
        return write(file, "");
    }

    /** A loopback port free at this moment (the agent binds it a little later; collisions are unlikely). */
    public static int freeLoopbackPort() {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("no free loopback port", e);
        }
    }
}
