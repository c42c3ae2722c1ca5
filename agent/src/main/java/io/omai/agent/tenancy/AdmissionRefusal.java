package io.omai.agent.tenancy;

/**
 * Why the agent refused to hand devices to the pod kubelet is admitting. Sealed so that the kubelet adapter's
 * one status mapper handles every case; every message names the pod(s), tenant(s) and GPU(s) concerned.
 */
public abstract sealed class AdmissionRefusal extends Exception {
    private AdmissionRefusal(String message) {
        super(message);
    }

    /** Several pending pods of different tenants could be the one being admitted; the agent does not guess. */
    public static final class Ambiguous extends AdmissionRefusal {
        public Ambiguous(String message) {
            super(message);
        }
    }

    /** No pending pod on the node asks for this many milli-GPUs and no reservation does. */
    public static final class Unidentified extends AdmissionRefusal {
        public Unidentified(String message) {
            super(message);
        }
    }

    /** The devices would put two tenants on one GPU (or node) against the anti-affinity policy. */
    public static final class AntiAffinity extends AdmissionRefusal {
        public AntiAffinity(String message) {
            super(message);
        }
    }

    /** The pod holds a reservation and the devices are not the reserved ones. */
    public static final class NotReserved extends AdmissionRefusal {
        public NotReserved(String message) {
            super(message);
        }
    }

    /** The capacity is held by other pods' reservations. */
    public static final class ReservedForOthers extends AdmissionRefusal {
        public ReservedForOthers(String message) {
            super(message);
        }
    }

    /** The GPU is withdrawn from sharing (another plugin hands it out whole). */
    public static final class Withdrawn extends AdmissionRefusal {
        public Withdrawn(String message) {
            super(message);
        }
    }
}
