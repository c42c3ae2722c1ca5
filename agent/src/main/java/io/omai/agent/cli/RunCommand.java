package io.omai.agent.cli;

import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigException;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.nvml.FfmNvmlLibrary;
import io.omai.agent.lifecycle.AgentStartException;
import io.omai.agent.metrics.AgentMetrics;
import io.omai.agent.metrics.MetricsServer;
import io.omai.agent.metrics.NodeAgentSources;
import io.omai.agent.metrics.TenantLookup;
import io.omai.agent.node.NodeAgent;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code omai-agent run}: the daemon. Reads the configuration, discovers the GPUs through NVML, opens the ledger,
 * serves the device plugin and keeps it registered with kubelet until SIGTERM (or SIGINT), then stops cleanly.
 */
@Command(
        name = "run",
        mixinStandardHelpOptions = true,
        description = "Run the node agent: milli-GPU device plugin, allocation ledger, GPU health.")
final class RunCommand implements Callable<Integer> {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(RunCommand.class);
    static final int EXIT_STOPPED = 0;
    static final int EXIT_BAD_CONFIG = 2;
    static final int EXIT_CANNOT_START = 3;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(
            names = "--config",
            paramLabel = "FILE",
            defaultValue = "/etc/omai/agent.yaml",
            description = "The agent's YAML configuration (default ${DEFAULT-VALUE}).")
    Path config;

    @Option(
            names = "--device-plugin-dir",
            paramLabel = "DIR",
            description = "Overrides directories.devicePlugin (kubelet's device-plugin directory).")
    Path devicePluginDir;

    @Option(
            names = "--pod-resources-socket",
            paramLabel = "SOCKET",
            description = "Overrides directories.podResourcesSocket.")
    Path podResourcesSocket;

    @Option(names = "--state-dir", paramLabel = "DIR", description = "Overrides directories.state.")
    Path stateDir;

    @Override
    public Integer call() throws InterruptedException {
        AgentConfig agentConfig;
        try {
            agentConfig = ConfigLoader.withDirectories(
                    ConfigLoader.load(config), devicePluginDir, podResourcesSocket, stateDir);
        } catch (ConfigException e) {
            spec.commandLine().getErr().println("omai-agent run: bad configuration: " + e.getMessage());
            spec.commandLine().getErr().flush();
            return EXIT_BAD_CONFIG;
        }
        // Probes answer from the start (readiness: "starting"), so a slow start is not taken for a dead one.
        AgentMetrics metrics = AgentMetrics.create(agentConfig.nodeName());
        MetricsServer metricsServer;
        NodeAgent agent;
        try {
            metricsServer = MetricsServer.start(agentConfig.metrics(), metrics);
        } catch (UncheckedIOException e) {
            spec.commandLine().getErr().println("omai-agent run: " + e.getMessage());
            spec.commandLine().getErr().flush();
            return EXIT_CANNOT_START;
        }
        try {
            agent = NodeAgent.start(agentConfig, metrics.rpcLatency());
        } catch (AgentStartException e) {
            metricsServer.close();
            spec.commandLine().getErr().println("omai-agent run: " + e.getMessage());
            spec.commandLine().getErr().flush();
            return EXIT_CANNOT_START;
        }
        NodeAgentSources.bind(metrics, agent, FfmNvmlLibrary.instance(), TenantLookup.UNKNOWN);
        metrics.health().markStarted();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime()
                .addShutdownHook(Thread.ofPlatform().name("omai-shutdown").unstarted(() -> {
                    metrics.health().markStopping();
                    agent.close();
                    metricsServer.close();
                    metrics.close();
                    log.info("event=agent_stopped exit={}", EXIT_STOPPED);
                    stopped.countDown();
                    // SIGTERM/SIGINT end the JVM with 143/130 once the hooks are done; a stop that completed is a clean
                    // exit (docs/operations.md), so end with 0 here. Nothing in the agent calls System.exit while it
                    // runs, so a signal is the only way into this hook.
                    System.err.flush();
                    Runtime.getRuntime().halt(EXIT_STOPPED);
                }));
        stopped.await();
        return EXIT_STOPPED;
    }
}
