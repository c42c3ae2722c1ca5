package io.omai.simulator.node;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The agent configuration of a simulated node, the one place its YAML is written: the directories, shim and NVML
 * of the node are set from its paths; each caller adds only its own settings ({@link #set}) and, for keys the
 * builder cannot express (a value the loader must refuse), raw top-level YAML ({@link #appendRaw}).
 */
public final class AgentYaml {
    /** Top-level scalars in order, then sections of {@code key: value} lines in order. */
    private final Map<String, String> scalars = new LinkedHashMap<>();

    private final Map<String, Map<String, String>> sections = new LinkedHashMap<>();
    private final StringBuilder raw = new StringBuilder();

    private AgentYaml() {}

    /** A configuration for {@code paths}'s node named {@code nodeName}; nothing else is set. */
    public static AgentYaml forNode(String nodeName, SimulatedNodePaths paths) {
        AgentYaml yaml = new AgentYaml();
        yaml.scalars.put("version", "1");
        yaml.scalars.put("nodeName", nodeName);
        return yaml.set("directories.devicePlugin", paths.devicePlugins())
                .set("directories.podResourcesSocket", paths.podResourcesSocket())
                .set("directories.state", paths.state())
                .set("shim.hostLibrary", paths.shimLibrary())
                .set("nvml.library", paths.nvmlLibrary());
    }

    /**
     * Sets {@code section.key} to {@code value}: a {@link Duration} is written in milliseconds; a text starting
     * with a newline is a nested block, written as given after the colon; anything else as {@code toString()}.
     */
    public AgentYaml set(String sectionAndKey, Object value) {
        int dot = sectionAndKey.indexOf('.');
        if (dot <= 0 || dot == sectionAndKey.length() - 1 || sectionAndKey.indexOf('.', dot + 1) >= 0) {
            throw new IllegalArgumentException("expected section.key (one dot), got '" + sectionAndKey + "'");
        }
        String text = value instanceof Duration duration ? duration.toMillis() + "ms" : value.toString();
        sections.computeIfAbsent(sectionAndKey.substring(0, dot), s -> new LinkedHashMap<>())
                .put(sectionAndKey.substring(dot + 1), text);
        return this;
    }

    /** kubelet timings for tests: re-registration within a second, the given reconcile interval and grace period. */
    public AgentYaml quickKubelet(Duration reconcileInterval, Duration releaseGracePeriod) {
        return set("kubelet.registrationBackoffMax", "1s")
                .set("kubelet.reconcileInterval", reconcileInterval)
                .set("kubelet.releaseGracePeriod", releaseGracePeriod);
    }

    /** /metrics on the loopback interface at {@code port}. */
    public AgentYaml metrics(int port) {
        return set("metrics.address", "127.0.0.1").set("metrics.port", port);
    }

    /** The scheduler API on the loopback interface at {@code port}. */
    public AgentYaml schedulerApi(int port) {
        return set("schedulerApi.address", "127.0.0.1").set("schedulerApi.port", port);
    }

    /**
     * Who may Reserve and Release ({@code schedulerApi.reserveAuth}): {@code none} where the caller's
     * authentication is not what is under test (the agent logs a warning), {@code tokenReview} (the default) or
     * {@code mtls}.
     */
    public AgentYaml reserveAuth(String mode) {
        return set("schedulerApi.reserveAuth", mode);
    }

    /** No scheduler API (where it is not under test it only adds start time). */
    public AgentYaml schedulerApiOff() {
        sections.remove("schedulerApi");
        return set("schedulerApi.enabled", "false");
    }

    /**
     * The DRA kubelet plugin on, with kubelet's directories under {@code paths}'s root (the plugin watcher's
     * {@link SimulatedNodePaths#pluginsRegistry()}, the driver's {@link SimulatedNodePaths#draPluginDir(String)} and
     * the CDI spec directory {@link SimulatedNodePaths#cdiDir()}), driver {@code gpu.omai.io}. The plugin reads
     * ResourceClaims and writes ResourceSlices through the Kubernetes API, so the agent needs one: run it with
     * {@code tenancy.kubernetesApi: on} and a client pointed at the (mock) API server ({@code KUBERNETES_MASTER},
     * as {@code ./omai simulate} does).
     */
    public AgentYaml dra(SimulatedNodePaths paths) {
        return set("dra.enabled", "true")
                .set("dra.driverName", DRA_DRIVER)
                .set("dra.pluginsRegistryDir", paths.pluginsRegistry())
                .set("dra.pluginDir", paths.draPluginDir(DRA_DRIVER))
                .set("dra.cdiDir", paths.cdiDir())
                .set("dra.sliceUpdateDebounce", "50ms");
    }

    /** The driver name {@link #dra} configures. */
    public static final String DRA_DRIVER = "gpu.omai.io";

    /** Top-level YAML written after everything else, as given (must not repeat a section set here). */
    public AgentYaml appendRaw(String yaml) {
        raw.append(yaml);
        return this;
    }

    public String text() {
        StringBuilder text = new StringBuilder();
        scalars.forEach(
                (key, value) -> text.append(key).append(": ").append(value).append('\n'));
        sections.forEach((section, entries) -> {
            text.append(section).append(":\n");
            entries.forEach((key, value) -> text.append("  ")
                    .append(key)
                    .append(':')
                    .append(value.startsWith("\n") ? "" : " ")
                    .append(value)
                    .append('\n'));
        });
        return text.append(raw).toString();
    }

    /** Writes the configuration to {@code file} and returns it. */
    public Path writeTo(Path file) {
        try {
            Files.writeString(file, text());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the agent configuration " + file, e);
        }
        return file;
    }
}
