package io.omai.agent;

import io.omai.agent.cli.OmaiCommand;

/** Entry point of the {@code omai-agent} daemon and operator CLI. */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        System.exit(OmaiCommand.commandLine().execute(args));
    }
}
