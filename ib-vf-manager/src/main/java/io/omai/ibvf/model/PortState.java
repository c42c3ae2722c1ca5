package io.omai.ibvf.model;

import java.util.Optional;

/** Logical IB port state, as {@code ports/<n>/state} shows it ({@code "4: ACTIVE"}). */
public enum PortState {
    DOWN(1),
    INIT(2),
    ARMED(3),
    ACTIVE(4),
    ACTIVE_DEFER(5);

    private final int code;

    PortState(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    /** The sysfs spelling, e.g. {@code 4: ACTIVE}. */
    public String sysfsText() {
        return code + ": " + name();
    }

    /** Parses {@code "<code>: <NAME>"}; the number is authoritative, the name must agree with it. */
    public static Optional<PortState> fromSysfs(String text) {
        int colon = text.indexOf(':');
        if (colon < 0) {
            return Optional.empty();
        }
        String number = text.substring(0, colon).strip();
        String name = text.substring(colon + 1).strip();
        for (PortState state : values()) {
            if (Integer.toString(state.code).equals(number) && state.name().equals(name)) {
                return Optional.of(state);
            }
        }
        return Optional.empty();
    }
}
