package io.omai.agent.cli;

/**
 * A subcommand contributed by another module through {@link java.util.ServiceLoader}. The test harness adds
 * {@code simulate} this way, so the agent ships without the simulator while {@code ./omai simulate} still runs
 * the very same CLI.
 */
public interface CommandExtension {
    /** A picocli {@code @Command} object to register as a subcommand. */
    Object command();
}
