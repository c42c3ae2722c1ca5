package io.omai.agent.quota.shm;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A control or usage file that is not what the ABI says it must be. The message always names the file, what
 * was found and what was expected, so an operator can tell a stale file from a foreign one from a truncated one.
 */
public final class RegionFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    /** What is wrong with the file; tests and the audit switch on it. */
    public enum Problem {
        /** Shorter than its header or its declared records. */
        TRUNCATED,
        /** Not an OMAI file of the expected kind. */
        BAD_MAGIC,
        /** An OMAI file written for another ABI version. */
        UNSUPPORTED_VERSION,
        /** A header field (size, count, offset) that contradicts the ABI. */
        BAD_FIELD,
        /** The writer stopped half-way through an update and never finished it. */
        TORN_UPDATE
    }

    private final Path file;
    private final Problem problem;

    public RegionFormatException(Path file, Problem problem, String detail) {
        super(file + ": " + detail);
        this.file = file;
        this.problem = problem;
    }

    public Path file() {
        return file;
    }

    public Problem problem() {
        return problem;
    }
}
