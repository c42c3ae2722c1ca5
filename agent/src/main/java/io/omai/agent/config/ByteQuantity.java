package io.omai.agent.config;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Byte sizes as operators write them: {@code 4GiB}, {@code 512Mi}, {@code 1.5G}, {@code 1048576}. Binary
 * suffixes (Ki, Mi, Gi, Ti, with or without B) are powers of 1024, decimal ones (K, M, G, T) powers of 1000,
 * as in Kubernetes quantities.
 */
public final class ByteQuantity {
    private static final Pattern FORMAT =
            Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*(|B|K|KB|M|MB|G|GB|T|TB|Ki|KiB|Mi|MiB|Gi|GiB|Ti|TiB)");

    private ByteQuantity() {}

    /**
     * Parses a size.
     *
     * @throws IllegalArgumentException naming the text and the accepted forms
     */
    public static long parse(String text) {
        if (text == null) {
            throw new IllegalArgumentException("byte size is missing; expected e.g. 4GiB, 512Mi or 1048576");
        }
        Matcher m = FORMAT.matcher(text.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException("'" + text + "' is not a byte size; expected a number with an "
                    + "optional unit B, K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), e.g. 4GiB");
        }
        long multiplier = switch (m.group(2).toUpperCase(Locale.ROOT).replace("B", "")) {
            case "" -> 1L;
            case "K" -> 1_000L;
            case "M" -> 1_000_000L;
            case "G" -> 1_000_000_000L;
            case "T" -> 1_000_000_000_000L;
            case "KI" -> 1L << 10;
            case "MI" -> 1L << 20;
            case "GI" -> 1L << 30;
            case "TI" -> 1L << 40;
            default -> throw new AssertionError(m.group(2));
        };
        java.math.BigDecimal bytes =
                new java.math.BigDecimal(m.group(1)).multiply(java.math.BigDecimal.valueOf(multiplier));
        try {
            return bytes.setScale(0, java.math.RoundingMode.UNNECESSARY).longValueExact();
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("'" + text + "' is not a whole number of bytes below 2^63");
        }
    }

    /** A short human form: {@code 4.00 GiB}, {@code 512 B}. */
    public static String format(long bytes) {
        if (bytes < 0) {
            return Long.toUnsignedString(bytes) + " B";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB", "PiB"};
        if (bytes < 1024) {
            return bytes + " B";
        }
        double value = bytes;
        int unit = -1;
        while (value >= 1024 && unit < units.length - 1) {
            value /= 1024;
            unit++;
        }
        return String.format(Locale.ROOT, "%.2f %s", value, units[unit]);
    }
}
