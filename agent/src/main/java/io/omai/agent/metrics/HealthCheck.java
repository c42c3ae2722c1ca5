package io.omai.agent.metrics;

import java.util.Optional;

/** One condition of liveness or readiness. Called on every probe: it must be cheap and must not block. */
@FunctionalInterface
public interface HealthCheck {
    /** Empty when the condition holds; otherwise what is wrong, in one short line. */
    Optional<String> problem();
}
