package io.omai.agent.lifecycle;

import java.util.Optional;

/** What {@code /healthz} asks of one background loop. */
public interface LoopState {
    /** The loop's name, as logs and probe answers show it. */
    String name();

    /** Empty while the loop completes passes within its deadline; otherwise what is wrong, in one line. */
    Optional<String> problem(long nowNanos);

    /**
     * When (the agent's nano clock) the loop last completed a pass, for {@code omai_loop_last_pass_age_seconds}; its
     * start until the first.
     */
    long lastPassNanos();
}
