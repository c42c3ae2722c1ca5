package io.omai.agent.metrics.contract;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A scrape in the Prometheus text format 0.0.4, read into families: each family's TYPE, HELP and samples (a
 * histogram's {@code _bucket}, {@code _sum} and {@code _count} samples belong to the histogram).
 */
public final class ExpositionText {
    private static final Pattern SAMPLE = Pattern.compile("([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{(.*)})? (\\S+)");
    private static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\",?");

    /** One sample: its full name (with any suffix), labels and value. */
    public record Sample(String name, Map<String, String> labels, double value) {}

    /** One family. */
    public record Family(String name, String type, String help, List<Sample> samples) {}

    private final Map<String, Family> families = new LinkedHashMap<>();

    public ExpositionText(String text) {
        Map<String, String> types = new LinkedHashMap<>();
        Map<String, String> helps = new LinkedHashMap<>();
        Map<String, List<Sample>> samples = new LinkedHashMap<>();
        for (String line : text.split("\n", -1)) {
            if (line.startsWith("# TYPE ")) {
                String[] parts = line.substring(7).split(" ", 2);
                types.put(parts[0], parts.length > 1 ? parts[1] : "");
                samples.putIfAbsent(parts[0], new ArrayList<>());
            } else if (line.startsWith("# HELP ")) {
                String[] parts = line.substring(7).split(" ", 2);
                helps.put(parts[0], parts.length > 1 ? parts[1] : "");
            } else if (!line.isBlank() && !line.startsWith("#")) {
                Matcher sample = SAMPLE.matcher(line);
                if (!sample.matches()) {
                    throw new AssertionError("not a sample line: " + line);
                }
                Map<String, String> labels = new TreeMap<>();
                if (sample.group(2) != null) {
                    Matcher label = LABEL.matcher(sample.group(2));
                    while (label.find()) {
                        labels.put(label.group(1), label.group(2));
                    }
                }
                String name = sample.group(1);
                samples.computeIfAbsent(familyOf(name, types), family -> new ArrayList<>())
                        .add(new Sample(name, labels, parse(sample.group(3))));
            }
        }
        samples.forEach((name, list) -> families.put(
                name, new Family(name, types.getOrDefault(name, ""), helps.getOrDefault(name, ""), List.copyOf(list))));
    }

    /** Every family, by name. */
    public Map<String, Family> families() {
        return families;
    }

    /** The value of the one sample named {@code name} whose labels include the given pairs; NaN when none. */
    public double value(String name, String... labelPairs) {
        Map<String, String> wanted = new TreeMap<>();
        for (int i = 0; i + 1 < labelPairs.length; i += 2) {
            wanted.put(labelPairs[i], labelPairs[i + 1]);
        }
        List<Sample> found = families.values().stream()
                .flatMap(f -> f.samples().stream())
                .filter(s -> s.name().equals(name) && s.labels().entrySet().containsAll(wanted.entrySet()))
                .toList();
        if (found.size() > 1) {
            throw new AssertionError(found.size() + " samples of " + name + " match " + wanted);
        }
        return found.isEmpty() ? Double.NaN : found.getFirst().value();
    }

    private static String familyOf(String sample, Map<String, String> types) {
        if (types.containsKey(sample)) {
            return sample;
        }
        for (String suffix : new String[] {"_bucket", "_sum", "_count", "_created"}) {
            if (sample.endsWith(suffix)) {
                String base = sample.substring(0, sample.length() - suffix.length());
                if (types.containsKey(base)) {
                    return base;
                }
            }
        }
        return sample;
    }

    private static double parse(String value) {
        return switch (value) {
            case "+Inf" -> Double.POSITIVE_INFINITY;
            case "-Inf" -> Double.NEGATIVE_INFINITY;
            case "NaN" -> Double.NaN;
            default -> Double.parseDouble(value);
        };
    }
}
