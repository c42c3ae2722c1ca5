package io.omai.agent.logging;

/**
 * Escapes text for the agent's one-line {@code event=... key=value} logs. Values come from kubelet, schedulers and
 * containers (device IDs, pod names, error messages quoting them); none of them may start a line of its own or
 * close a quoted value early, whatever it contains.
 */
public final class LogText {
    private LogText() {}

    /**
     * A logged value: control characters escaped as by {@link #controls}, and {@code \} and {@code "} escaped too,
     * so a value inside {@code key="..."} ends where the message says it ends.
     */
    public static String value(String text) {
        return escape(text, true);
    }

    /**
     * A whole line: CR, LF, the other C0 and C1 controls, DEL and the Unicode line and paragraph separators become
     * {@code \r}, {@code \n}, {@code \t} or {@code \}{@code uXXXX}; everything else is kept.
     */
    public static String controls(String text) {
        return escape(text, false);
    }

    private static String escape(String text, boolean quotes) {
        if (text == null) {
            return "null";
        }
        int i = 0;
        while (i < text.length() && !needsEscape(text.charAt(i), quotes)) {
            i++;
        }
        if (i == text.length()) {
            return text; // the usual case: nothing to copy
        }
        StringBuilder out = new StringBuilder(text.length() + 16).append(text, 0, i);
        for (; i < text.length(); i++) {
            char c = text.charAt(i);
            if (!needsEscape(c, quotes)) {
                out.append(c);
                continue;
            }
            switch (c) {
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\\' -> out.append("\\\\");
                case '"' -> out.append("\\\"");
                default -> out.append(String.format("\\u%04x", (int) c));
            }
        }
        return out.toString();
    }

    private static boolean needsEscape(char c, boolean quotes) {
        return c < 0x20
                || (c >= 0x7f && c <= 0x9f)
                || c == '\u2028'
                || c == '\u2029'
                || (quotes && (c == '\\' || c == '"'));
    }
}
