package io.omai.agent.tenancy;

import java.util.Optional;

/** The pod (and container) an admission is for, with its reservation if it holds one. */
record Admitted(
        String podUid,
        String namespace,
        String pod,
        String container,
        String tenant,
        Optional<Reservation> reservation) {
    String describe() {
        if (podUid.isEmpty()) {
            return "an unidentified pod (no Kubernetes API, no reservation)";
        }
        return namespace.isEmpty()
                ? "pod " + podUid
                : "pod " + namespace + "/" + pod + " (container '" + container + "', tenant '" + tenant + "')";
    }
}
