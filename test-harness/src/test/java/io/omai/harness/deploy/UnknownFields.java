package io.omai.harness.deploy;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.lang.reflect.Field;
import java.lang.reflect.InaccessibleObjectException;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Finds fields a manifest sets that the Kubernetes API does not have. fabric8's model classes do not reject an
 * unknown field: they keep it in their {@code additionalProperties} map (a typo such as {@code redinessProbe} or a
 * field at the wrong level would deserialize "fine" and be dropped or refused by the API server). This walks the
 * whole deserialized object graph and reports every non-empty {@code additionalProperties}, with its JSON path.
 */
final class UnknownFields {
    private final List<String> problems = new ArrayList<>();
    private final Set<Object> visited = java.util.Collections.newSetFromMap(new IdentityHashMap<>());

    private UnknownFields() {}

    /** One line per unknown field, e.g. {@code spec.template.spec.containers[0].securityContext: unknown field(s) [privilegd]}. */
    static List<String> in(Object root, String rootPath) {
        UnknownFields walker = new UnknownFields();
        walker.walk(root, rootPath);
        return walker.problems;
    }

    private void walk(Object value, String path) {
        if (value == null
                || value instanceof CharSequence
                || value instanceof Number
                || value instanceof Boolean
                || value instanceof Enum<?>) {
            return;
        }
        if (value instanceof Map<?, ?> map) {
            map.forEach((key, element) -> walk(element, join(path, String.valueOf(key))));
            return;
        }
        if (value instanceof Collection<?> collection) {
            int index = 0;
            for (Object element : collection) {
                walk(element, path + "[" + index++ + "]");
            }
            return;
        }
        if (!value.getClass().getName().startsWith("io.fabric8.") || !visited.add(value)) {
            return;
        }
        for (Class<?> type = value.getClass(); type != null && type != Object.class; type = type.getSuperclass()) {
            for (Field field : type.getDeclaredFields()) {
                if (Modifier.isStatic(field.getModifiers()) || field.isSynthetic()) {
                    continue;
                }
                Object fieldValue = read(field, value);
                if (field.getName().equals("additionalProperties") && fieldValue instanceof Map<?, ?> extra) {
                    if (!extra.isEmpty()) {
                        problems.add((path.isEmpty() ? "<root>" : path) + ": unknown field(s) "
                                + new TreeSet<>(extra.keySet().stream()
                                        .map(String::valueOf)
                                        .toList()));
                    }
                    continue;
                }
                JsonProperty property = field.getAnnotation(JsonProperty.class);
                String name = property != null && !property.value().isEmpty() ? property.value() : field.getName();
                walk(fieldValue, join(path, name));
            }
        }
    }

    private static Object read(Field field, Object owner) {
        try {
            field.setAccessible(true);
            return field.get(owner);
        } catch (IllegalAccessException | InaccessibleObjectException e) {
            throw new AssertionError("cannot read " + field + " while looking for unknown fields", e);
        }
    }

    private static String join(String path, String name) {
        return path.isEmpty() ? name : path + "." + name;
    }
}
