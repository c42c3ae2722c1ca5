package io.omai.ibvf.report;

import java.util.Locale;

/** How {@link IbInventoryReport} renders: an operator's table or machine-readable JSON. */
public enum ReportFormat {
    TEXT,
    JSON;

    /** Parses a CLI flag value ({@code text} or {@code json}). */
    public static ReportFormat parse(String text) {
        try {
            return valueOf(text.strip().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException unknown) {
            throw new IllegalArgumentException("report format '" + text + "' is unknown; expected 'text' or 'json'");
        }
    }
}
