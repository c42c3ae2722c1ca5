package io.omai.agent.quota;

import java.nio.file.Path;

/**
 * A process exists but the agent cannot read what it needs about it ({@code /proc/pid/stat}, {@code status} or
 * {@code ns/pid}). Its slots are then left alone: a process that cannot be proven dead keeps its memory.
 */
public final class ProcessUnreadableException extends RuntimeException {
    public ProcessUnreadableException(Path procDir, Throwable cause) {
        super(
                "cannot read " + procDir + " (" + cause + "); the agent needs root and hostPID to tell which "
                        + "processes of a container are gone",
                cause);
    }
}
