package io.omai.agent.metrics;

import io.prometheus.metrics.core.metrics.Info;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;

/**
 * {@code omai_build_info{version, revision, java_version, node}} = 1: which agent build and JVM run on a node, so
 * a dashboard shows a half-finished rollout and alerts can be joined on it. Version and revision are written into
 * {@code build.properties} by Maven ({@code -Domai.revision=$(git rev-parse --short HEAD)}; "unknown" otherwise).
 * An info metric of the Prometheus client itself: Micrometer would strip the reserved {@code _info} suffix.
 */
record BuildInfo(String version, String revision, String javaVersion) {
    static final String NAME = "omai_build";

    static BuildInfo current() {
        Properties properties = new Properties();
        try (InputStream in = BuildInfo.class.getResourceAsStream("build.properties")) {
            if (in != null) {
                properties.load(in);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the agent's build.properties", e);
        }
        return new BuildInfo(
                filled(properties.getProperty("version")),
                filled(properties.getProperty("revision")),
                Runtime.version().toString());
    }

    /** "unknown" for a missing value or one Maven left unfiltered. */
    private static String filled(String value) {
        return value == null || value.isBlank() || value.startsWith("${") ? "unknown" : value;
    }

    void register(PrometheusRegistry registry, String nodeName) {
        Info info = Info.builder()
                .name(NAME)
                .help("Always 1; its labels name the agent's version, source revision and Java runtime")
                .labelNames("version", "revision", "java_version", "node")
                .register(registry);
        info.setLabelValues(version, revision, javaVersion, nodeName);
    }
}
