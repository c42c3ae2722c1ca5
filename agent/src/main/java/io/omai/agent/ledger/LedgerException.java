package io.omai.agent.ledger;

/**
 * Why the ledger refused a request. Sealed: the device-plugin adapter maps each kind to one gRPC status in one
 * place, and a new kind cannot be added without deciding its status there. A refused request leaves the ledger
 * unchanged.
 */
public abstract sealed class LedgerException extends Exception
        permits LedgerException.InvalidRequest, LedgerException.NoFit, LedgerException.StorageFailed {

    private LedgerException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The request itself is wrong: unknown or malformed IDs, a share spanning GPUs, a bad size. */
    public static final class InvalidRequest extends LedgerException {
        public InvalidRequest(String message) {
            super(message, null);
        }
    }

    /** The request is well formed but no GPU (or set of whole GPUs) among the candidates can hold it. */
    public static final class NoFit extends LedgerException {
        public NoFit(String message) {
            super(message, null);
        }
    }

    /** The allocation's files or the checkpoint could not be written; nothing was recorded. */
    public static final class StorageFailed extends LedgerException {
        public StorageFailed(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
