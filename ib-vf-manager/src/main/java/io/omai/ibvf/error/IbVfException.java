package io.omai.ibvf.error;

/**
 * Root of every failure this module reports. Sealed so callers (the agent's gRPC and CLI layers) can map each kind
 * exhaustively; every message names the path or command, the value involved and what was expected.
 */
public abstract sealed class IbVfException extends RuntimeException
        permits SysfsFormatException,
                SysfsMissingException,
                KernelRejectedException,
                VfNotReadyException,
                GuidAssignmentException,
                QosUnsupportedException {

    protected IbVfException(String message, Throwable cause) {
        super(message, cause);
    }
}
