package io.omai.agent.lifecycle;

/** The agent cannot start; the message says why and what to fix. */
public final class AgentStartException extends Exception {
    public AgentStartException(String message, Throwable cause) {
        super(message, cause);
    }
}
