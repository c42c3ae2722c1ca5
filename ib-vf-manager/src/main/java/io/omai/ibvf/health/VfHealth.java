package io.omai.ibvf.health;

import java.util.List;

/** Whether a VF may be handed to a pod right now; an unhealthy VF says every reason. */
public sealed interface VfHealth permits VfHealth.Healthy, VfHealth.Unhealthy {

    Healthy HEALTHY = new Healthy();

    boolean isHealthy();

    record Healthy() implements VfHealth {
        @Override
        public boolean isHealthy() {
            return true;
        }

        @Override
        public String toString() {
            return "Healthy";
        }
    }

    record Unhealthy(List<Problem> problems) implements VfHealth {
        public Unhealthy {
            if (problems.isEmpty()) {
                throw new IllegalArgumentException("an unhealthy VF needs at least one problem");
            }
            problems = List.copyOf(problems);
        }

        @Override
        public boolean isHealthy() {
            return false;
        }

        @Override
        public String toString() {
            return "Unhealthy" + problems.stream().map(Problem::toString).toList();
        }
    }

    /** One reason a VF is unhealthy, with the observed detail for the operator. */
    record Problem(Reason reason, String detail) {
        @Override
        public String toString() {
            return reason + ": " + detail;
        }
    }

    enum Reason {
        PF_PORT_NOT_ACTIVE,
        NO_DRIVER,
        NO_RDMA_DEVICE,
        GUID_INVALID,
        GUID_NOT_AS_ASSIGNED,
        STATE_NOT_AS_DESIRED
    }
}
