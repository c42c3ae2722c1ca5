package io.omai.placement;

import java.util.Locale;

/** Byte counts in messages: exact and readable ({@code 21474836480 (20.00 GiB)}). */
public final class Bytes {
    private Bytes() {}

    public static String format(long bytes) {
        if (Math.abs(bytes) < 1024) {
            return bytes + " B";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double value = bytes;
        int unit = -1;
        while (Math.abs(value) >= 1024 && unit < units.length - 1) {
            value /= 1024;
            unit++;
        }
        return String.format(Locale.ROOT, "%d B (%.2f %s)", bytes, value, units[unit]);
    }
}
