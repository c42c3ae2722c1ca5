package io.omai.harness.deploy;

import java.util.LinkedHashSet;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The metric names a PromQL expression selects, found by removing what cannot be a metric name (string literals,
 * label matchers, range selectors, grouping label lists, dashboard variables, numbers) and keeping every remaining
 * identifier that is not a function, aggregation or keyword. An identifier this class does not know as a function
 * therefore counts as a metric name: an unexpected function makes the dashboard test fail rather than pass blind.
 */
final class PromQlNames {
    private static final Set<String> FUNCTIONS_AND_KEYWORDS = Set.of(
            // aggregations
            "sum",
            "min",
            "max",
            "avg",
            "count",
            "topk",
            "bottomk",
            "quantile",
            "stddev",
            "stdvar",
            "group",
            // functions
            "rate",
            "irate",
            "increase",
            "delta",
            "deriv",
            "histogram_quantile",
            "clamp_min",
            "clamp_max",
            "vector",
            "scalar",
            "abs",
            "time",
            "avg_over_time",
            "max_over_time",
            "min_over_time",
            "changes",
            "resets",
            "label_replace",
            "absent",
            // operators and modifiers
            "and",
            "or",
            "unless",
            "bool",
            "offset",
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right");

    private static final Pattern STRING = Pattern.compile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`");
    private static final Pattern MATCHERS = Pattern.compile("\\{[^}]*}");
    private static final Pattern RANGE = Pattern.compile("\\[[^]]*]");
    private static final Pattern GROUPING =
            Pattern.compile("\\b(by|without|on|ignoring|group_left|group_right)\\s*\\([^)]*\\)");
    private static final Pattern VARIABLE = Pattern.compile("\\$\\{[^}]*}|\\$\\w+");
    /** A duration outside a range selector: {@code offset 15m}. */
    private static final Pattern DURATION = Pattern.compile("(?<![\\w:])(\\d+(ms|s|m|h|d|w|y))+\\b");

    private static final Pattern NUMBER = Pattern.compile("(?<![\\w:])\\d+(\\.\\d+)?(e[+-]?\\d+)?");
    private static final Pattern IDENTIFIER = Pattern.compile("[a-zA-Z_:][a-zA-Z0-9_:]*");
    private static final Pattern LABEL_VALUES = Pattern.compile("label_values\\(\\s*([a-zA-Z_:][a-zA-Z0-9_:]*)");

    private PromQlNames() {}

    /** The metric names {@code expr} selects, in order of appearance. */
    static Set<String> metrics(String expr) {
        String rest = STRING.matcher(expr).replaceAll(" ");
        rest = MATCHERS.matcher(rest).replaceAll(" ");
        rest = RANGE.matcher(rest).replaceAll(" ");
        rest = GROUPING.matcher(rest).replaceAll(" ");
        rest = VARIABLE.matcher(rest).replaceAll(" ");
        rest = DURATION.matcher(rest).replaceAll(" ");
        rest = NUMBER.matcher(rest).replaceAll(" ");
        Set<String> names = new LinkedHashSet<>();
        Matcher m = IDENTIFIER.matcher(rest);
        while (m.find()) {
            if (!FUNCTIONS_AND_KEYWORDS.contains(m.group())) {
                names.add(m.group());
            }
        }
        return names;
    }

    /** The metric of a Grafana {@code label_values(metric{...}, label)} variable query, or null if it has none. */
    static String labelValuesMetric(String query) {
        Matcher m = LABEL_VALUES.matcher(query);
        return m.find() ? m.group(1) : null;
    }
}
