package io.omai.agent.metrics.contract;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The metric families docs/operations.md documents: the table between {@code <!-- metric-families -->} and
 * {@code <!-- /metric-families -->}, one row per family: name, type, labels, when it is present, meaning. Tests
 * hold every scrape to it, so the documentation and the agent cannot drift apart.
 */
public final class DocumentedFamilies {
    private DocumentedFamilies() {}

    /** Families present on every agent. */
    public static final String ALWAYS = "always";
    /** NVML telemetry: present for every GPU whose driver answers the query (the fakes and the simulator do). */
    public static final String WHERE_NVML_SUPPORTS_IT = "where NVML supports it";

    /**
     * One documented family.
     *
     * @param name as exported (counters with {@code _total})
     * @param type counter, gauge, histogram, summary
     * @param labels every label its samples carry
     * @param present {@link #ALWAYS}, or the event or hardware it takes (e.g. "after an XID")
     */
    public record Family(String name, String type, Set<String> labels, String present) {
        /** Present on every agent whose NVML answers every query: no event or extra hardware needed. */
        public boolean always() {
            return present.equals(ALWAYS) || present.equals(WHERE_NVML_SUPPORTS_IT);
        }
    }

    private static final Pattern ROW =
            Pattern.compile("^\\|\\s*`([a-z_:][a-z0-9_:]*)`\\s*\\|([^|]*)\\|([^|]*)\\|([^|]*)\\|");

    /** Every row of the table, in document order. */
    public static List<Family> read() {
        Path doc = repositoryRoot().resolve("docs/operations.md");
        String text;
        try {
            text = Files.readString(doc);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + doc, e);
        }
        int start = text.indexOf("<!-- metric-families -->");
        int end = text.indexOf("<!-- /metric-families -->");
        if (start < 0 || end < start) {
            throw new AssertionError(
                    doc + " has no table between <!-- metric-families --> and " + "<!-- /metric-families --> markers");
        }
        List<Family> families = new ArrayList<>();
        for (String line : text.substring(start, end).split("\n", -1)) {
            Matcher row = ROW.matcher(line.strip());
            if (row.find()) {
                Set<String> labels = new LinkedHashSet<>();
                Arrays.stream(row.group(3).split(",", -1))
                        .map(String::strip)
                        .filter(label -> !label.isEmpty())
                        .forEach(labels::add);
                families.add(new Family(
                        row.group(1), row.group(2).strip(), labels, row.group(4).strip()));
            }
        }
        if (families.isEmpty()) {
            throw new AssertionError("the metric-families table of " + doc + " has no rows");
        }
        return families;
    }

    /** The checkout's root: the nearest directory above the working directory holding {@code mvnw}. */
    public static Path repositoryRoot() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null && !Files.isRegularFile(dir.resolve("mvnw"))) {
            dir = dir.getParent();
        }
        if (dir == null) {
            throw new IllegalStateException("no mvnw above " + Path.of("").toAbsolutePath());
        }
        return dir;
    }
}
