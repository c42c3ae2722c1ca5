package io.omai.simulator.simulate;

import io.omai.agent.cli.CommandExtension;

/** Contributes {@code simulate} to the agent's CLI when the harness is on the classpath ({@code ./omai}). */
public final class SimulateExtension implements CommandExtension {
    @Override
    public Object command() {
        return new SimulateCommand();
    }
}
