package io.omai.agent.deviceplugin;

import io.grpc.Status;
import io.grpc.StatusException;
import io.omai.agent.ledger.LedgerException;

/**
 * The one place where the ledger's refusals become gRPC statuses. The switch is exhaustive over the sealed
 * {@link LedgerException}, so a new kind of refusal does not compile until it has a status here.
 */
public final class GrpcStatusMapper {
    private GrpcStatusMapper() {}

    public static Status toStatus(LedgerException e) {
        return switch (e) {
            case LedgerException.InvalidRequest invalid -> Status.INVALID_ARGUMENT.withDescription(invalid.getMessage());
            case LedgerException.NoFit noFit -> Status.RESOURCE_EXHAUSTED.withDescription(noFit.getMessage());
            case LedgerException.StorageFailed storage ->
                    Status.INTERNAL.withDescription(storage.getMessage()).withCause(storage);
        };
    }

    public static StatusException toException(LedgerException e) {
        return toStatus(e).asException();
    }

    /** A request the adapter itself refuses before reaching the ledger (malformed message). */
    public static StatusException invalidRequest(String message) {
        return Status.INVALID_ARGUMENT.withDescription(message).asException();
    }
}
