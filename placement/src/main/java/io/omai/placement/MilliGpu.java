package io.omai.placement;

/**
 * The {@code omai.io/milli-gpu} unit, defined once: 1000 per physical GPU (and so 1000 device IDs per GPU). A
 * request below 1000 is a share of one GPU; a multiple of 1000 is that many whole GPUs. Anything else (1500)
 * cannot be placed without splitting a share and is refused.
 */
public final class MilliGpu {
    public static final int PER_GPU = 1000;

    private MilliGpu() {}

    public static boolean isShare(int milli) {
        return milli > 0 && milli < PER_GPU;
    }

    public static boolean isValid(int milli) {
        return milli >= 0 && (milli < PER_GPU || milli % PER_GPU == 0);
    }

    /** How many GPUs a valid request occupies: 0, 1 for a share, milli/1000 for whole GPUs. */
    public static int gpuCount(int milli) {
        if (!isValid(milli)) {
            throw new IllegalArgumentException(describeInvalid(milli));
        }
        return milli == 0 ? 0 : isShare(milli) ? 1 : milli / PER_GPU;
    }

    /** Milli each of the occupied GPUs gives: the share itself, or all of it. */
    public static int perGpu(int milli) {
        return isShare(milli) ? milli : PER_GPU;
    }

    /**
     * The memory rule, defined once: memory per GPU when none was asked for (and what an unlimited quota counts
     * as): proportional to a share, rounded down, else the whole card.
     */
    public static long defaultMemory(int milli, long cardMemoryBytes) {
        // split so that milli * bytes cannot overflow for any card size
        return isShare(milli)
                ? cardMemoryBytes / PER_GPU * milli + cardMemoryBytes % PER_GPU * milli / PER_GPU
                : cardMemoryBytes;
    }

    public static String describeInvalid(int milli) {
        return milli < 0
                ? milli + " is negative"
                : milli + " is not a share below " + PER_GPU + " nor a multiple of " + PER_GPU;
    }
}
