package io.omai.agent.deviceplugin;

import io.grpc.Status;
import io.grpc.StatusException;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.tenancy.AdmissionRefusal;

/**
 * The one place where the ledger's refusals become gRPC statuses. The switch is exhaustive over the sealed
 * {@link LedgerException}, so a new kind of refusal does not compile until it has a status here.
 */
public final class GrpcStatusMapper {
    private GrpcStatusMapper() {}

    public static Status toStatus(LedgerException e) {
        return switch (e) {
            case LedgerException.InvalidRequest invalid -> Status.INVALID_ARGUMENT.withDescription(described(invalid));
            case LedgerException.NoFit noFit -> Status.RESOURCE_EXHAUSTED.withDescription(described(noFit));
            case LedgerException.StorageFailed storage ->
                Status.INTERNAL.withDescription(described(storage)).withCause(storage);
        };
    }

    /**
     * The description kubelet shows in the pod's events: never empty (kubelet surfaces an empty grpc-message as
     * a bare status code), and the refusal's kind when a message is missing.
     */
    private static String described(Exception e) {
        String message = e.getMessage();
        if (message == null || message.isBlank()) {
            return e.getClass().getSimpleName() + " (no detail recorded; see the agent's log)";
        }
        // a description travels as an HTTP/2 header (grpc-message): keep it well inside any peer's header limit
        return message.length() <= MAX_DESCRIPTION
                ? message
                : message.substring(0, MAX_DESCRIPTION) + "... (" + message.length() + " characters; the agent's "
                        + "log has all of it)";
    }

    /** The longest description sent to kubelet; the log keeps the whole message. */
    static final int MAX_DESCRIPTION = 2048;

    public static StatusException toException(LedgerException e) {
        return toStatus(e).asException();
    }

    /** Tenancy refusals: the request is well formed but the node's state (tenants, reservations) forbids it. */
    public static Status toStatus(AdmissionRefusal e) {
        return switch (e) {
            case AdmissionRefusal.Ambiguous ambiguous ->
                Status.FAILED_PRECONDITION.withDescription(described(ambiguous));
            case AdmissionRefusal.Unidentified unknown ->
                Status.FAILED_PRECONDITION.withDescription(described(unknown));
            case AdmissionRefusal.AntiAffinity refused ->
                Status.FAILED_PRECONDITION.withDescription(described(refused));
            case AdmissionRefusal.NotReserved other -> Status.FAILED_PRECONDITION.withDescription(described(other));
            case AdmissionRefusal.ReservedForOthers held -> Status.RESOURCE_EXHAUSTED.withDescription(described(held));
            case AdmissionRefusal.Withdrawn withdrawn ->
                Status.FAILED_PRECONDITION.withDescription(described(withdrawn));
        };
    }

    public static StatusException toException(AdmissionRefusal e) {
        return toStatus(e).asException();
    }

    /**
     * Why a VF cannot be handed out now, as the VF manager reported it. Every kind means the device is not in a
     * usable state at this moment (not a bad request), so all map to {@code FAILED_PRECONDITION}; the switch is
     * exhaustive so a new kind has to be placed here.
     */
    public static StatusException toException(io.omai.ibvf.error.IbVfException e) {
        Status status = switch (e) {
            case io.omai.ibvf.error.VfNotReadyException notReady -> Status.FAILED_PRECONDITION;
            case io.omai.ibvf.error.SysfsMissingException missing -> Status.FAILED_PRECONDITION;
            case io.omai.ibvf.error.SysfsFormatException malformed -> Status.FAILED_PRECONDITION;
            case io.omai.ibvf.error.KernelRejectedException rejected -> Status.FAILED_PRECONDITION;
            case io.omai.ibvf.error.GuidAssignmentException guid -> Status.FAILED_PRECONDITION;
            case io.omai.ibvf.error.QosUnsupportedException qos -> Status.FAILED_PRECONDITION;
        };
        return status.withDescription(e.getMessage()).withCause(e).asException();
    }

    /** A device that exists but must not be handed out now (advertised Unhealthy). */
    public static StatusException unusableDevice(String message) {
        return Status.FAILED_PRECONDITION.withDescription(message).asException();
    }

    /** A request the adapter itself refuses before reaching the ledger (malformed message). */
    public static StatusException invalidRequest(String message) {
        return Status.INVALID_ARGUMENT.withDescription(message).asException();
    }
}
