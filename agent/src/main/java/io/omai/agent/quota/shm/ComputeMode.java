package io.omai.agent.quota.shm;

/** How an allocation's compute quota is enforced ({@code OMAI_COMPUTE_MODE_*}). */
public enum ComputeMode {
    /** Never above the quota, even on an idle GPU. */
    HARD_CAP(ShmLayout.COMPUTE_MODE_HARD_CAP),
    /** May borrow idle GPU time and gives it back when others need it. */
    WORK_CONSERVING(ShmLayout.COMPUTE_MODE_WORK_CONSERVING);

    private final int code;

    ComputeMode(int code) {
        this.code = code;
    }

    /** The value stored in {@code omai_control_device.compute_mode}. */
    public int code() {
        return code;
    }

    /** The mode for a stored value; {@code null} for a value no mode has. */
    public static ComputeMode ofCode(int code) {
        for (ComputeMode mode : values()) {
            if (mode.code == code) {
                return mode;
            }
        }
        return null;
    }
}
