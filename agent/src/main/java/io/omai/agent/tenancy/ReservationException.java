package io.omai.agent.tenancy;

/**
 * Why a reservation was refused. Sealed so the one place that turns these into protocol errors (the scheduler
 * API's status mapper) handles every case; each message names what was refused and why.
 */
public abstract sealed class ReservationException extends RuntimeException {
    private ReservationException(String message) {
        super(message);
    }

    /** Not enough milli, memory or free VFs left (including what other reservations hold). */
    public static final class InsufficientCapacity extends ReservationException {
        public InsufficientCapacity(String message) {
            super(message);
        }
    }

    /** The anti-affinity policy keeps this tenant off the GPU or node. */
    public static final class AntiAffinityViolation extends ReservationException {
        public AntiAffinityViolation(String message) {
            super(message);
        }
    }

    /**
     * Another tenant holds an unconsumed reservation with a container of the same size on this node: kubelet's
     * Allocate names no pod, so two such pods pending at once could not be told apart at admission (and would be
     * refused). Retry once that reservation is consumed or released.
     */
    public static final class AdmissionWouldBeAmbiguous extends ReservationException {
        public AdmissionWouldBeAmbiguous(String message) {
            super(message);
        }
    }

    /** A GPU UUID or VF id the node does not have. */
    public static final class UnknownDevice extends ReservationException {
        public UnknownDevice(String message) {
            super(message);
        }
    }

    /** The GPU exists but is unhealthy. */
    public static final class UnhealthyDevice extends ReservationException {
        public UnhealthyDevice(String message) {
            super(message);
        }
    }

    /** The idempotency key names a reservation with different content. */
    public static final class IdempotencyConflict extends ReservationException {
        public IdempotencyConflict(String message) {
            super(message);
        }
    }

    /** The pod already holds a reservation made under another key. */
    public static final class PodAlreadyReserved extends ReservationException {
        public PodAlreadyReserved(String message) {
            super(message);
        }
    }

    /** Nothing to release or consume: unknown, released or expired. */
    public static final class NoSuchReservation extends ReservationException {
        public NoSuchReservation(String message) {
            super(message);
        }
    }
}
