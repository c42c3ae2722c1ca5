package io.omai.agent.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The top-level {@code omai-agent} command; subcommands do the work. */
@Command(
        name = "omai-agent",
        mixinStandardHelpOptions = true,
        version = "omai-agent 0.1.0",
        description = "OMAI node agent: shares GPUs and InfiniBand VFs safely between containers.",
        subcommands = {CommandLine.HelpCommand.class})
public final class OmaiCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** A command line with every subcommand registered and errors reported without stack traces. */
    public static CommandLine commandLine() {
        return new CommandLine(new OmaiCommand());
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
