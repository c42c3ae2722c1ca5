package io.omai.agent.ledger;

import java.nio.file.Path;

/**
 * The ledger's checkpoint cannot be used: unreadable, not JSON, an unknown version or a checksum that does not
 * match. The file is never silently dropped: it is moved aside ({@link #keptAside()}) and the agent refuses to
 * start with this message; the next start begins with an empty ledger and adopts what kubelet's PodResources
 * says containers hold.
 */
public final class LedgerCheckpointException extends Exception {
    private final Path checkpoint;
    private final Path keptAside;

    public LedgerCheckpointException(Path checkpoint, Path keptAside, String problem, Throwable cause) {
        super("ledger checkpoint " + checkpoint + " is unusable: " + problem
                + (keptAside == null ? "" : "; kept aside as " + keptAside
                        + " (the next start rebuilds the ledger from kubelet's PodResources)"), cause);
        this.checkpoint = checkpoint;
        this.keptAside = keptAside;
    }

    public Path checkpoint() {
        return checkpoint;
    }

    /** Where the bad file now is, or null if it could not be moved. */
    public Path keptAside() {
        return keptAside;
    }
}
