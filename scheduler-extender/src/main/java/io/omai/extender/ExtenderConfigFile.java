package io.omai.extender;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.omai.extender.config.AgentConnection;
import io.omai.extender.config.AgentTls;
import io.omai.extender.config.ScoringPolicy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The extender's YAML configuration (see docs/scheduler-extender.md, "Configuration"). Every key is optional;
 * an unknown key or a wrong value fails with the key's path and what was expected, so a typo never silently
 * falls back to a default.
 */
public final class ExtenderConfigFile {
    private static final Pattern DURATION = Pattern.compile("([0-9]+)(ms|s|m)");
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    private ExtenderConfigFile() {}

    /** A configuration value that is wrong, naming where. */
    public static final class ConfigException extends Exception {
        public ConfigException(String message) {
            super(message);
        }
    }

    public static ExtenderSettings load(Path file, KubernetesClient client) throws ConfigException {
        JsonNode root;
        try {
            root = YAML.readTree(Files.readString(file));
        } catch (IOException e) {
            throw new ConfigException(file + ": cannot be read as YAML: " + e.getMessage());
        }
        return parse(root == null || root.isMissingNode() || root.isNull() ? YAML.createObjectNode() : root, client);
    }

    public static ExtenderSettings parse(JsonNode root, KubernetesClient client) throws ConfigException {
        if (!root.isObject()) {
            throw new ConfigException("the configuration is not a YAML mapping");
        }
        known(root, "", Set.of("http", "agents", "scoring", "tenantLabel", "parallelism"));
        JsonNode http = section(root, "http", Set.of("port"));
        JsonNode agents = section(
                root,
                "agents",
                Set.of(
                        "namespace",
                        "service",
                        "port",
                        "tokenFile",
                        "tls",
                        "fitDeadline",
                        "reserveDeadline",
                        "leaseSeconds",
                        "maxBackoff"));
        JsonNode scoring = section(root, "scoring", Set.of("strategy", "weights"));
        JsonNode weights = section(scoring, "weights", Set.of("gpu", "node", "numa"));
        try {
            var connection = AgentConnection.of(
                            text(agents, "agents.namespace", AgentConnection.DEFAULT_NAMESPACE),
                            text(agents, "agents.service", AgentConnection.DEFAULT_SERVICE),
                            integer(agents, "agents.port", AgentConnection.DEFAULT_PORT))
                    .withDeadlines(
                            duration(agents, "agents.fitDeadline", Duration.ofMillis(300)),
                            duration(agents, "agents.reserveDeadline", Duration.ofSeconds(2)),
                            integer(agents, "agents.leaseSeconds", 60),
                            duration(agents, "agents.maxBackoff", Duration.ofSeconds(10)));
            if (agents.has("tokenFile")) {
                connection = connection.withTokenFile(Path.of(text(agents, "agents.tokenFile", "")));
            }
            if (agents.has("tls")) {
                JsonNode tls = section(agents, "tls", Set.of("caFile", "certFile", "keyFile"));
                if (!tls.has("caFile")) {
                    throw new ConfigException("agents.tls.caFile is missing; expected the PEM CA of the agents");
                }
                connection = connection.withTls(new AgentTls(
                        Path.of(text(tls, "agents.tls.caFile", "")),
                        optionalPath(tls, "certFile"),
                        optionalPath(tls, "keyFile")));
            }
            var policy = new ScoringPolicy(
                    ScoringPolicy.Strategy.parse(text(scoring, "scoring.strategy", "binpack")),
                    integer(weights, "scoring.weights.gpu", ScoringPolicy.DEFAULT.gpuWeight()),
                    integer(weights, "scoring.weights.node", ScoringPolicy.DEFAULT.nodeWeight()),
                    integer(weights, "scoring.weights.numa", ScoringPolicy.DEFAULT.numaWeight()));
            return new ExtenderSettings(
                    integer(http, "http.port", 8888),
                    client,
                    connection,
                    policy,
                    text(root, "tenantLabel", "omai.io/tenant"),
                    integer(root, "parallelism", Runtime.getRuntime().availableProcessors()));
        } catch (IllegalArgumentException e) {
            throw new ConfigException(e.getMessage());
        }
    }

    private static JsonNode section(JsonNode parent, String key, Set<String> keys) throws ConfigException {
        JsonNode node = parent.path(key);
        if (node.isMissingNode() || node.isNull()) {
            return YAML.createObjectNode();
        }
        if (!node.isObject()) {
            throw new ConfigException(key + " is not a mapping; expected keys " + keys);
        }
        known(node, key + ".", keys);
        return node;
    }

    private static void known(JsonNode node, String prefix, Set<String> keys) throws ConfigException {
        List<String> unknown = new ArrayList<>();
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!keys.contains(key)) {
                unknown.add(prefix + key);
            }
        }
        if (!unknown.isEmpty()) {
            throw new ConfigException("unknown configuration key(s) " + unknown + "; expected " + prefix + "one of "
                    + keys.stream().sorted().toList());
        }
    }

    private static String text(JsonNode node, String path, String fallback) throws ConfigException {
        JsonNode value = node.path(path.substring(path.lastIndexOf('.') + 1));
        if (value.isMissingNode() || value.isNull()) {
            return fallback;
        }
        if (!value.isTextual() || value.asText().isBlank()) {
            throw new ConfigException(path + " is '" + value + "'; expected a non-empty string");
        }
        return value.asText().trim();
    }

    private static int integer(JsonNode node, String path, int fallback) throws ConfigException {
        JsonNode value = node.path(path.substring(path.lastIndexOf('.') + 1));
        if (value.isMissingNode() || value.isNull()) {
            return fallback;
        }
        if (!value.canConvertToInt() || !value.isIntegralNumber()) {
            throw new ConfigException(path + " is '" + value + "'; expected a whole number");
        }
        return value.asInt();
    }

    private static Duration duration(JsonNode node, String path, Duration fallback) throws ConfigException {
        JsonNode value = node.path(path.substring(path.lastIndexOf('.') + 1));
        if (value.isMissingNode() || value.isNull()) {
            return fallback;
        }
        Matcher m = DURATION.matcher(value.asText(""));
        if (!value.isTextual() || !m.matches()) {
            throw new ConfigException(path + " is '" + value + "'; expected a duration such as 300ms, 2s or 1m");
        }
        long amount = Long.parseLong(m.group(1));
        return switch (m.group(2)) {
            case "ms" -> Duration.ofMillis(amount);
            case "s" -> Duration.ofSeconds(amount);
            default -> Duration.ofMinutes(amount);
        };
    }

    private static Optional<Path> optionalPath(JsonNode tls, String key) throws ConfigException {
        return tls.has(key) ? Optional.of(Path.of(text(tls, "agents.tls." + key, ""))) : Optional.empty();
    }
}
