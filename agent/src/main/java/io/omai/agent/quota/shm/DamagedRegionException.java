package io.omai.agent.quota.shm;

/**
 * A mapped region file that changed under the agent after it was opened: truncated, or faulting when touched
 * (the {@link InternalError} of an unsafe memory access is turned into this). Unchecked, because any read of a
 * file a container can write may meet it; the cause names the file, what was found and what was expected.
 */
public final class DamagedRegionException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public DamagedRegionException(RegionFormatException cause) {
        super(cause.getMessage(), cause);
    }

    /** What is wrong with the file. */
    public RegionFormatException.Problem problem() {
        return ((RegionFormatException) getCause()).problem();
    }
}
