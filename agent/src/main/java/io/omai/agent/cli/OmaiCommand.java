package io.omai.agent.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The top-level {@code omai-agent} command; subcommands do the work. */
@Command(
        name = "omai-agent",
        mixinStandardHelpOptions = true,
        version = "omai-agent 0.1.0",
        description = "OMAI node agent: shares GPUs and InfiniBand VFs safely between containers.",
        subcommands = {
            CommandLine.HelpCommand.class,
            InspectCommand.class,
            AllocationCommands.Create.class,
            AllocationCommands.Set.class,
            RunCommand.class,
            IbCommand.class,
        })
public final class OmaiCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** A command line with every subcommand registered and errors reported without stack traces. */
    public static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new OmaiCommand());
        for (CommandExtension extension : java.util.ServiceLoader.load(CommandExtension.class)) {
            cli.addSubcommand(extension.command());
        }
        // Bad input is an operator error: print the message, not a stack trace.
        cli.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            commandLine.getErr().println(commandLine.getCommandName() + ": " + e.getMessage());
            return e instanceof IllegalArgumentException || e instanceof java.io.IOException ? 2 : 1;
        });
        return cli;
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
