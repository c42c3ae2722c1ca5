package io.omai.agent.tenancy;

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;

/**
 * What a scheduler asks to hold for a pod. Equal requests (same key, pod, tenant, containers and lease) are
 * the same request: retrying one returns the reservation it made.
 */
public record ReservationRequest(
        String idempotencyKey, String podUid, String tenant, List<ContainerReservation> containers, Duration lease) {
    public ReservationRequest {
        requireText(idempotencyKey, "idempotency key");
        requireText(podUid, "pod UID");
        // fail closed: a reservation without a tenant could never be checked for anti-affinity
        requireText(tenant, "tenant");
        containers = List.copyOf(containers);
        Objects.requireNonNull(lease, "lease");
        if (lease.isNegative() || lease.isZero()) {
            throw new IllegalArgumentException("lease " + lease + " is not positive");
        }
        if (containers.isEmpty()) {
            throw new IllegalArgumentException("a reservation needs at least one container");
        }
        var names = new HashSet<String>();
        var vfs = new HashSet<String>();
        for (ContainerReservation container : containers) {
            if (!names.add(container.name())) {
                throw new IllegalArgumentException("container '" + container.name() + "' named twice");
            }
            for (String vf : container.vfIds()) {
                if (!vfs.add(vf)) {
                    throw new IllegalArgumentException("VF " + vf + " named twice");
                }
            }
        }
    }

    private static void requireText(String value, String what) {
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException(what + " is missing");
        }
    }

    /** The same pod, tenant and containers (the lease may differ): a retry or a renewal of this request. */
    boolean sameAssignment(ReservationRequest other) {
        return podUid.equals(other.podUid) && tenant.equals(other.tenant) && containers.equals(other.containers);
    }

    /** The first field in which {@code other} differs, for an idempotency conflict message; empty if equal. */
    String firstDifference(ReservationRequest other) {
        if (!podUid.equals(other.podUid)) {
            return "pod UID '" + podUid + "' vs '" + other.podUid + "'";
        }
        if (!tenant.equals(other.tenant)) {
            return "tenant '" + tenant + "' vs '" + other.tenant + "'";
        }
        if (!containers.equals(other.containers)) {
            return "containers " + containers + " vs " + other.containers;
        }
        if (!lease.equals(other.lease)) {
            return "lease " + lease.toSeconds() + "s vs " + other.lease.toSeconds() + "s";
        }
        return "";
    }
}
