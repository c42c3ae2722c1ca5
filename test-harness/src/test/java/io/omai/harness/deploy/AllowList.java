package io.omai.harness.deploy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The fields of a resource fabric8 has no model for (the Prometheus Operator's ServiceMonitor, kustomize files),
 * written down as an explicit allow-list: anything a manifest sets outside it is reported with its JSON path, just
 * like an unknown field of a modelled kind.
 */
sealed interface AllowList {
    /** A string, number or boolean. */
    record Scalar() implements AllowList {}

    /** A mapping with exactly these optional keys. */
    record Fields(Map<String, AllowList> fields) implements AllowList {}

    /** A list whose elements all match {@code element}. */
    record ListOf(AllowList element) implements AllowList {}

    /** A mapping with free keys (labels, selectors) whose values match {@code value}. */
    record MapOf(AllowList value) implements AllowList {}

    static Fields fields(Object... keysAndShapes) {
        java.util.LinkedHashMap<String, AllowList> fields = new java.util.LinkedHashMap<>();
        for (int i = 0; i < keysAndShapes.length; i += 2) {
            fields.put((String) keysAndShapes[i], (AllowList) keysAndShapes[i + 1]);
        }
        return new Fields(fields);
    }

    static ListOf listOf(AllowList element) {
        return new ListOf(element);
    }

    static MapOf mapOf(AllowList value) {
        return new MapOf(value);
    }

    /** Every place {@code value} (plain maps, lists and scalars, as Jackson reads them) leaves this allow-list. */
    default List<String> violations(Object value, String path) {
        List<String> problems = new ArrayList<>();
        check(this, value, path, problems);
        return problems;
    }

    private static void check(AllowList shape, Object value, String path, List<String> problems) {
        if (value == null) {
            return;
        }
        switch (shape) {
            case Scalar s -> {
                if (value instanceof Map<?, ?> || value instanceof List<?>) {
                    problems.add(path + ": expected a single value, found "
                            + (value instanceof Map ? "a mapping" : "a list"));
                }
            }
            case Fields f -> {
                if (!(value instanceof Map<?, ?> map)) {
                    problems.add(path + ": expected a mapping with keys "
                            + f.fields().keySet());
                    return;
                }
                TreeSet<String> unknown = new TreeSet<>();
                map.forEach((key, element) -> {
                    AllowList field = f.fields().get(String.valueOf(key));
                    if (field == null) {
                        unknown.add(String.valueOf(key));
                    } else {
                        check(field, element, join(path, String.valueOf(key)), problems);
                    }
                });
                if (!unknown.isEmpty()) {
                    problems.add((path.isEmpty() ? "<root>" : path) + ": unknown field(s) " + unknown + "; allowed: "
                            + f.fields().keySet());
                }
            }
            case ListOf l -> {
                if (!(value instanceof List<?> list)) {
                    problems.add(path + ": expected a list");
                    return;
                }
                for (int i = 0; i < list.size(); i++) {
                    check(l.element(), list.get(i), path + "[" + i + "]", problems);
                }
            }
            case MapOf m -> {
                if (!(value instanceof Map<?, ?> map)) {
                    problems.add(path + ": expected a mapping");
                    return;
                }
                map.forEach((key, element) -> check(m.value(), element, join(path, String.valueOf(key)), problems));
            }
        }
    }

    private static String join(String path, String name) {
        return path.isEmpty() ? name : path + "." + name;
    }
}
