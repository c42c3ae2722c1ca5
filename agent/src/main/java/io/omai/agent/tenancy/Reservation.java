package io.omai.agent.tenancy;

import java.time.Instant;
import java.util.List;
import java.util.Objects;

/**
 * Devices held for a pod until {@link #expiresAt()} or until kubelet's Allocate consumes it.
 *
 * @param request the request as made (kept to recognise retries)
 * @param containers the request's containers with defaults resolved: memory per GPU is never 0 where milli is
 */
public record Reservation(
        ReservationRequest request, List<ContainerReservation> containers, Instant createdAt, Instant expiresAt) {
    public Reservation {
        Objects.requireNonNull(request, "request");
        containers = List.copyOf(containers);
        Objects.requireNonNull(createdAt, "createdAt");
        Objects.requireNonNull(expiresAt, "expiresAt");
    }

    public String idempotencyKey() {
        return request.idempotencyKey();
    }

    public String podUid() {
        return request.podUid();
    }

    public String tenant() {
        return request.tenant();
    }

    public boolean isLiveAt(Instant now) {
        return now.isBefore(expiresAt);
    }
}
