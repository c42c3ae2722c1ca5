package io.omai.agent.metrics;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** One scrape in the Prometheus text format, parsed into samples so tests can look values up by labels. */
final class Scrape {
    private static final Pattern SAMPLE = Pattern.compile("([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{(.*)})? (\\S+)");
    private static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\",?");

    /** A sample's identity: its name and its labels, sorted. */
    record Series(String name, Map<String, String> labels) {}

    final String text;
    private final Map<Series, Double> samples = new LinkedHashMap<>();

    Scrape(String text) {
        this.text = text;
        for (String line : text.split("\n", -1)) {
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
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
            samples.put(new Series(sample.group(1), labels), parse(sample.group(3)));
        }
    }

    static Scrape of(AgentMetrics metrics) {
        return new Scrape(metrics.scrape());
    }

    /** The value of the one sample of {@code name} whose labels include {@code labels} (name, value pairs). */
    OptionalDouble value(String name, String... labels) {
        Map<String, String> wanted = pairs(labels);
        Double found = null;
        for (Map.Entry<Series, Double> sample : samples.entrySet()) {
            if (sample.getKey().name().equals(name)
                    && sample.getKey().labels().entrySet().containsAll(wanted.entrySet())) {
                if (found != null) {
                    throw new AssertionError("more than one sample of " + name + " matches " + wanted + " in\n" + text);
                }
                found = sample.getValue();
            }
        }
        return found == null ? OptionalDouble.empty() : OptionalDouble.of(found);
    }

    /** The value of a sample that must be there. */
    double get(String name, String... labels) {
        return value(name, labels)
                .orElseThrow(() -> new AssertionError("no sample " + name + " with " + pairs(labels) + " in\n" + text));
    }

    /** How many samples of {@code name} carry these labels. */
    long count(String name, String... labels) {
        Map<String, String> wanted = pairs(labels);
        return samples.keySet().stream()
                .filter(s -> s.name().equals(name) && s.labels().entrySet().containsAll(wanted.entrySet()))
                .count();
    }

    /** Whether any sample of any metric carries label {@code key} = {@code value}. */
    boolean anySampleLabelled(String key, String value) {
        return samples.keySet().stream().anyMatch(s -> value.equals(s.labels().get(key)));
    }

    private static Map<String, String> pairs(String... labels) {
        if (labels.length % 2 != 0) {
            throw new IllegalArgumentException("labels come in name, value pairs");
        }
        Map<String, String> map = new TreeMap<>();
        for (int i = 0; i < labels.length; i += 2) {
            map.put(labels[i], labels[i + 1]);
        }
        return map;
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
