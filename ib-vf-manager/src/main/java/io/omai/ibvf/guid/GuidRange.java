package io.omai.ibvf.guid;

import io.omai.ibvf.model.Guid;

/**
 * The inclusive block of GUIDs this node may hand to its VFs. The cluster gives every node its own block (for
 * example {@code 02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff} for node 7), which makes GUIDs unique across the
 * subnet without coordination at run time.
 */
public record GuidRange(Guid first, Guid last) {

    public GuidRange {
        if (Long.compareUnsigned(first.value(), last.value()) > 0) {
            throw new IllegalArgumentException("GUID range start " + first + " is above its end " + last);
        }
        if (last.value() - first.value() + 1 <= 0) {
            throw new IllegalArgumentException(
                    "GUID range " + first + "-" + last + " is too large; at most 2^63 GUIDs per node");
        }
    }

    /** Parses {@code <first>-<last>} with either GUID spelling. */
    public static GuidRange parse(String text) {
        String[] bounds = text.split("-", -1);
        if (bounds.length != 2) {
            throw new IllegalArgumentException(
                    "GUID range '" + text + "' is not of the form 02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff");
        }
        return new GuidRange(parseBound(text, bounds[0]), parseBound(text, bounds[1]));
    }

    private static Guid parseBound(String range, String bound) {
        return Guid.parse(bound)
                .orElseThrow(() -> new IllegalArgumentException(
                        "GUID range '" + range + "': '" + bound + "' is not a GUID such as 02:00:00:07:00:00:00:00"));
    }

    /** Number of GUIDs in the range. */
    public long size() {
        return last.value() - first.value() + 1;
    }

    public boolean contains(Guid guid) {
        return Long.compareUnsigned(guid.value(), first.value()) >= 0
                && Long.compareUnsigned(guid.value(), last.value()) <= 0;
    }

    /** The GUID at {@code offset} from the start; {@code offset} must be below {@link #size()}. */
    public Guid at(long offset) {
        return new Guid(first.value() + offset);
    }

    @Override
    public String toString() {
        return first + "-" + last;
    }
}
