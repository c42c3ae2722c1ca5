package io.omai.agent.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * docs/operations.md's configuration reference is the loader's own key list: one row per key of
 * {@link ConfigLoader#keys()}, none more; every default written as a YAML value is the loader's default (a file
 * holding only that key loads to {@link ConfigLoader#defaults()}); every type is what the loader checks (a value of
 * another type is refused naming the key, and each value of a {@code one of} type is accepted). A new key in the
 * loader fails here, named, until its row is added.
 */
class ConfigReferenceTest {
    private static final Path OPERATIONS = Path.of("..", "docs", "operations.md");
    private static final String BEGIN = "<!-- config-reference -->";
    private static final String END = "<!-- /config-reference -->";
    // | `key` | type | default | meaning |
    private static final Pattern ROW = Pattern.compile("\\|\\s*`([^`]+)`\\s*\\|([^|]*)\\|([^|]*)\\|(.*)\\|\\s*");
    private static final Pattern NEEDS = Pattern.compile("needs `([^`]+)`");
    private static final Pattern YAML_DEFAULT = Pattern.compile("`([^`]*)`");
    /** A value each type refuses (YAML). */
    private static final Map<String, String> WRONG_VALUE = Map.of(
            "boolean", "\"not-a-boolean\"",
            "duration", "\"5 parsecs\"",
            "integer", "\"not-a-number\"",
            "string", "[1]",
            "path", "relative/path",
            "IP address", "not-an-ip",
            "list", "not-a-list",
            "byte size", "\"lots\"");

    record Row(String key, String type, String defaultCell, String meaning) {}

    @Test
    void everyKeyTheLoaderAcceptsHasOneRowAndNoRowIsExtra() throws IOException {
        List<Row> rows = rows();
        List<String> documented = rows.stream().map(Row::key).toList();
        Set<String> duplicates = new LinkedHashSet<>();
        Set<String> seen = new LinkedHashSet<>();
        documented.forEach(key -> {
            if (!seen.add(key)) {
                duplicates.add(key);
            }
        });
        List<String> missing = new ArrayList<>(ConfigLoader.keys());
        missing.removeAll(documented);
        List<String> extra = new ArrayList<>(documented);
        extra.removeAll(ConfigLoader.keys());
        assertThat(List.of(missing, extra, List.copyOf(duplicates)))
                .as("configuration keys: [missing from docs/operations.md's reference, documented but not read by "
                        + "ConfigLoader, documented twice]; add one row `| `key` | type | default | meaning |` "
                        + "between the config-reference markers per key")
                .isEqualTo(List.of(List.of(), List.of(), List.of()));
    }

    @Test
    void everyDocumentedDefaultIsTheLoadersDefault() throws IOException {
        AgentConfig defaults = ConfigLoader.defaults();
        List<String> wrong = new ArrayList<>();
        for (Row row : rows()) {
            Matcher literal = YAML_DEFAULT.matcher(row.defaultCell());
            if (row.defaultCell().startsWith("—")) {
                continue; // no literal default: the meaning says what happens (e.g. $NODE_NAME, unset)
            }
            if (!literal.matches()) {
                wrong.add(row.key() + ": default '" + row.defaultCell()
                        + "' is neither a YAML value in backticks nor '— (what happens)'");
                continue;
            }
            try {
                AgentConfig loaded = ConfigLoader.parse("<reference>", yamlWith(row.key(), literal.group(1)));
                if (!loaded.equals(defaults)) {
                    wrong.add(
                            row.key() + ": documented default `" + literal.group(1) + "` is not the loader's default");
                }
            } catch (ConfigException e) {
                wrong.add(row.key() + ": documented default `" + literal.group(1) + "` is refused: " + e.getMessage());
            }
        }
        assertThat(wrong).as("defaults in docs/operations.md").isEmpty();
    }

    @Test
    void everyDocumentedTypeIsWhatTheLoaderChecks() throws IOException {
        List<String> wrong = new ArrayList<>();
        for (Row row : rows()) {
            if (row.type().startsWith("one of ")) {
                for (String value : row.type().substring("one of ".length()).split(",", -1)) {
                    String yaml = value.strip().replace("`", "");
                    try {
                        ConfigLoader.parse("<reference>", yamlWith(row.key(), yaml));
                    } catch (ConfigException e) {
                        if (!refusedForADocumentedNeed(row, e)) {
                            wrong.add(row.key() + ": documented value '" + yaml + "' is refused: " + e.getMessage());
                        }
                    }
                }
                expectRefused(row.key(), "not-one-of-them", wrong);
                continue;
            }
            String type = WRONG_VALUE.keySet().stream()
                    .filter(row.type()::startsWith)
                    .findFirst()
                    .orElse(null);
            if (type == null) {
                wrong.add(row.key() + ": type '" + row.type() + "' is none of " + WRONG_VALUE.keySet()
                        + " and not 'one of `a`, `b`'");
                continue;
            }
            expectRefused(row.key(), WRONG_VALUE.get(type), wrong);
        }
        assertThat(wrong).as("types in docs/operations.md").isEmpty();
    }

    /**
     * A value of a {@code one of} type that works only with another key set (the meaning says "needs `tls`") may be
     * refused alone, as long as the refusal names what it needs.
     */
    private static boolean refusedForADocumentedNeed(Row row, ConfigException e) {
        Matcher needs = NEEDS.matcher(row.meaning());
        while (needs.find()) {
            if (e.getMessage().contains(needs.group(1))) {
                return true;
            }
        }
        return false;
    }

    private static void expectRefused(String key, String value, List<String> wrong) {
        try {
            ConfigLoader.parse("<reference>", yamlWith(key, value));
            wrong.add(key + ": " + value + " is accepted, so the documented type is not what the loader checks");
        } catch (ConfigException e) {
            if (!e.key().equals(key)) {
                wrong.add(key + ": " + value + " is refused under another key: " + e.getMessage());
            }
        }
    }

    /** A file of {@code version: 1} and {@code key} (dotted) set to {@code value}, nested as YAML mappings. */
    private static String yamlWith(String key, String value) {
        StringBuilder yaml = new StringBuilder(key.equals("version") ? "" : "version: " + AgentConfig.VERSION + "\n");
        String[] parts = key.split("\\.", -1);
        for (int i = 0; i < parts.length; i++) {
            yaml.append("  ".repeat(i)).append(parts[i]).append(':');
            yaml.append(i == parts.length - 1 ? " " + value + "\n" : "\n");
        }
        return yaml.toString();
    }

    private static List<Row> rows() throws IOException {
        String doc = Files.readString(OPERATIONS);
        int begin = doc.indexOf(BEGIN);
        int end = doc.indexOf(END);
        assertThat(begin).as("%s in %s", BEGIN, OPERATIONS).isNotNegative();
        assertThat(end).as("%s after %s in %s", END, BEGIN, OPERATIONS).isGreaterThan(begin);
        List<Row> all = new ArrayList<>();
        for (String line : doc.substring(begin + BEGIN.length(), end).split("\n", -1)) {
            Matcher m = ROW.matcher(line);
            if (m.matches()) {
                Row row = new Row(
                        m.group(1),
                        m.group(2).strip(),
                        m.group(3).strip(),
                        m.group(4).strip());
                all.add(row);
            }
        }
        assertThat(all).as("rows between the config-reference markers").isNotEmpty();
        return all;
    }
}
