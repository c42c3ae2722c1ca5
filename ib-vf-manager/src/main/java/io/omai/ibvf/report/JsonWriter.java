package io.omai.ibvf.report;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * A minimal pretty-printing JSON writer (RFC 8259 escaping), so the module needs no JSON library. Callers nest
 * {@code begin*}/{@code end*} calls; commas and indentation are handled here.
 */
final class JsonWriter {

    private final StringBuilder out = new StringBuilder();
    /** One entry per open container: true once it holds an element (so the next one needs a comma). */
    private final Deque<Boolean> hasElements = new ArrayDeque<>();

    private boolean afterName;

    JsonWriter beginObject() {
        beforeValue();
        out.append('{');
        hasElements.push(false);
        return this;
    }

    JsonWriter endObject() {
        return end('}');
    }

    JsonWriter beginArray() {
        beforeValue();
        out.append('[');
        hasElements.push(false);
        return this;
    }

    JsonWriter endArray() {
        return end(']');
    }

    JsonWriter name(String name) {
        beforeValue();
        string(name);
        out.append(": ");
        afterName = true;
        return this;
    }

    JsonWriter value(String value) {
        beforeValue();
        if (value == null) {
            out.append("null");
        } else {
            string(value);
        }
        return this;
    }

    JsonWriter value(long value) {
        beforeValue();
        out.append(value);
        return this;
    }

    JsonWriter value(boolean value) {
        beforeValue();
        out.append(value);
        return this;
    }

    JsonWriter nullValue() {
        beforeValue();
        out.append("null");
        return this;
    }

    String finish() {
        if (!hasElements.isEmpty()) {
            throw new IllegalStateException("JSON has " + hasElements.size() + " unclosed containers");
        }
        return out.append('\n').toString();
    }

    private JsonWriter end(char close) {
        boolean any = hasElements.pop();
        if (any) {
            newline();
        }
        out.append(close);
        return this;
    }

    private void beforeValue() {
        if (afterName) {
            afterName = false;
            return;
        }
        if (!hasElements.isEmpty()) {
            if (hasElements.pop()) {
                out.append(',');
            }
            hasElements.push(true);
            newline();
        }
    }

    private void newline() {
        out.append('\n').append("  ".repeat(hasElements.size()));
    }

    private void string(String value) {
        out.append('"');
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append("\\u%04x".formatted((int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
