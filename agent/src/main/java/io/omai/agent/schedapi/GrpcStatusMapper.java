package io.omai.agent.schedapi;

import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.omai.agent.tenancy.ReservationException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one place where failures become gRPC statuses, in the manner of Armeria's
 * DefaultGrpcExceptionHandlerFunction. Domain refusals are sealed ({@link ReservationException}), so the switch
 * is checked for completeness; anything unexpected is logged here and reaches the client as INTERNAL without
 * internals.
 */
final class GrpcStatusMapper {
    private static final Logger log = LoggerFactory.getLogger(GrpcStatusMapper.class);

    private GrpcStatusMapper() {}

    static Status toStatus(Throwable failure) {
        return switch (failure) {
            case InvalidRequestException e -> Status.INVALID_ARGUMENT.withDescription(e.getMessage());
            case ReservationException e -> reservationStatus(e).withDescription(e.getMessage());
            case StatusRuntimeException e -> e.getStatus();
            case StatusException e -> e.getStatus();
            default -> {
                log.error("scheduler API call failed unexpectedly", failure);
                yield Status.INTERNAL.withDescription("internal error in the node agent; see its log");
            }
        };
    }

    private static Status reservationStatus(ReservationException e) {
        return switch (e) {
            case ReservationException.InsufficientCapacity c -> Status.RESOURCE_EXHAUSTED;
            case ReservationException.AntiAffinityViolation v -> Status.FAILED_PRECONDITION;
            case ReservationException.AdmissionWouldBeAmbiguous a -> Status.UNAVAILABLE;
            case ReservationException.UnhealthyDevice u -> Status.FAILED_PRECONDITION;
            case ReservationException.UnknownDevice u -> Status.NOT_FOUND;
            case ReservationException.NoSuchReservation n -> Status.NOT_FOUND;
            case ReservationException.IdempotencyConflict c -> Status.ALREADY_EXISTS;
            case ReservationException.PodAlreadyReserved p -> Status.ALREADY_EXISTS;
        };
    }
}
