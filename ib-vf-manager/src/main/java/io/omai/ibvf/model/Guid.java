package io.omai.ibvf.model;

import java.util.HexFormat;
import java.util.Locale;
import java.util.Optional;

/**
 * A 64-bit InfiniBand GUID. Interfaces disagree on spelling: sysfs shows {@code b83f:d203:00a1:b2c4}, {@code ip link}
 * and the MLNX_OFED files take {@code b8:3f:d2:03:00:a1:b2:c4}; both are parsed and produced here.
 * All-zero (never set) and all-ones (the CNI's "invalid" marker) are not usable GUIDs.
 */
public record Guid(long value) implements Comparable<Guid> {

    public static final Guid ZERO = new Guid(0L);
    public static final Guid ALL_ONES = new Guid(-1L);

    /** Parses either the sysfs (4×16-bit) or the colon-byte (8×8-bit) spelling; empty when neither matches. */
    public static Optional<Guid> parse(String text) {
        if (text == null) {
            return Optional.empty();
        }
        String trimmed = text.strip().toLowerCase(Locale.ROOT);
        String[] groups = trimmed.split(":", -1);
        int width = switch (groups.length) {
            case 4 -> 4;
            case 8 -> 2;
            default -> 0;
        };
        if (width == 0) {
            return Optional.empty();
        }
        long value = 0;
        for (String group : groups) {
            if (group.length() != width || !group.chars().allMatch(HexFormat::isHexDigit)) {
                return Optional.empty();
            }
            value = (value << (4 * width)) | HexFormat.fromHexDigitsToLong(group);
        }
        return Optional.of(new Guid(value));
    }

    /** Usable as a node or port GUID: neither all-zero nor all-ones. */
    public boolean isAssignable() {
        return value != 0L && value != -1L;
    }

    public String toSysfsFormat() {
        String hex = HexFormat.of().toHexDigits(value);
        return hex.substring(0, 4) + ":" + hex.substring(4, 8) + ":" + hex.substring(8, 12) + ":" + hex.substring(12);
    }

    public String toIpLinkFormat() {
        String hex = HexFormat.of().toHexDigits(value);
        StringBuilder out = new StringBuilder(23);
        for (int i = 0; i < 16; i += 2) {
            if (i > 0) {
                out.append(':');
            }
            out.append(hex, i, i + 2);
        }
        return out.toString();
    }

    @Override
    public int compareTo(Guid other) {
        return Long.compareUnsigned(value, other.value);
    }

    @Override
    public String toString() {
        return toIpLinkFormat();
    }
}
