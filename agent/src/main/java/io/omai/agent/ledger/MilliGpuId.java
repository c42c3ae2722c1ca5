package io.omai.agent.ledger;

import io.omai.placement.MilliGpu;

/**
 * One of the {@link MilliGpu#PER_GPU} device IDs a GPU is advertised as: {@code <gpu-uuid>-m<slot>}, slot 0..999.
 * The ID names its physical GPU, so a share can be checked to stay on one GPU.
 */
public record MilliGpuId(String uuid, int slot) implements Comparable<MilliGpuId> {
    /** The device-plugin API's limit on a device ID. */
    public static final int MAX_ID_LENGTH = 63;

    private static final String SEPARATOR = "-m";

    public MilliGpuId {
        if (slot < 0 || slot >= MilliGpu.PER_GPU) {
            throw new IllegalArgumentException(
                    "slot " + slot + " of " + uuid + " is outside 0.." + (MilliGpu.PER_GPU - 1));
        }
    }

    /** The longest GPU UUID whose IDs still fit in {@value #MAX_ID_LENGTH} characters. */
    public static int maxUuidLength() {
        return MAX_ID_LENGTH
                - SEPARATOR.length()
                - String.valueOf(MilliGpu.PER_GPU - 1).length();
    }

    /**
     * Parses an ID's syntax (it does not check that the GPU exists).
     *
     * @throws IllegalArgumentException naming the ID and the expected form
     */
    public static MilliGpuId parse(String id) {
        int at = id == null ? -1 : id.lastIndexOf(SEPARATOR);
        if (at <= 0 || at + SEPARATOR.length() == id.length()) {
            throw new IllegalArgumentException("device ID '" + id + "' is not of the form <gpu-uuid>-m<slot>");
        }
        String slotText = id.substring(at + SEPARATOR.length());
        if (slotText.length() > 3
                || !slotText.chars().allMatch(Character::isDigit)
                || (slotText.length() > 1 && slotText.charAt(0) == '0')) {
            throw new IllegalArgumentException("device ID '" + id + "' has slot '" + slotText + "'; expected 0.."
                    + (MilliGpu.PER_GPU - 1) + " without leading zeros");
        }
        return new MilliGpuId(id.substring(0, at), Integer.parseInt(slotText));
    }

    /** The ID as advertised to kubelet. */
    public String id() {
        return uuid + SEPARATOR + slot;
    }

    @Override
    public int compareTo(MilliGpuId other) {
        int byGpu = uuid.compareTo(other.uuid);
        return byGpu != 0 ? byGpu : Integer.compare(slot, other.slot);
    }

    @Override
    public String toString() {
        return id();
    }
}
