package io.omai.agent.config;

/**
 * A configuration value the agent refuses, with the key (as a dotted path), the value and what was expected.
 * The agent does not start with a bad configuration.
 */
public final class ConfigException extends Exception {
    private final String key;

    public ConfigException(String source, String key, String problem) {
        super(source + ": " + (key.isEmpty() ? "" : key + ": ") + problem);
        this.key = key;
    }

    /** The dotted key that was wrong, e.g. {@code sharing.memoryPolicy}; empty for the file itself. */
    public String key() {
        return key;
    }
}
