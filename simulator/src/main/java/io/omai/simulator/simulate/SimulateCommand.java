package io.omai.simulator.simulate;

import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.util.ScratchDirectories;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code omai-agent simulate}: the agent on a simulated node, the project's main job on any machine.
 */
@Command(
        name = "simulate",
        mixinStandardHelpOptions = true,
        description = {
            "Run the agent on a simulated node: 2 simulated GPUs, one InfiniBand HCA with VFs in a fake "
                    + "sysfs, an in-process kubelet simulator and Kubernetes API. Creates sample pods of two tenants in the "
                    + "API and admits them through kubelet's path (the agent identifies each pod and its tenant through its "
                    + "informer; one pod also takes a VF through the agent's omai.io/ib-vf plugin), runs their workloads "
                    + "under the shim, serves the agent's /metrics, /healthz and /readyz and shows a live table. Ctrl-C "
                    + "stops everything and removes what it created.",
            "With --nodes N (2 or more): a small simulated cluster instead: N agents as their own JVMs (2-4 "
                    + "simulated GPUs and an HCA with 4 VFs each), the scheduler extender and a kube-scheduler "
                    + "stand-in placing a stream of sample pods of three tenants through it; each bound pod is "
                    + "admitted by its node's kubelet simulator. The table shows every node's GPUs and where each "
                    + "pod went."
        })
public final class SimulateCommand implements Callable<Integer> {
    @Option(
            names = "--duration",
            paramLabel = "TIME",
            converter = DurationConverter.class,
            description = "Stop after showing the table this long, counted from when the sample pods run (e.g. 30s, "
                    + "2m); default: run until Ctrl-C.")
    Duration duration;

    @Option(
            names = "--refresh",
            paramLabel = "TIME",
            converter = DurationConverter.class,
            description = "Table refresh interval (default ${DEFAULT-VALUE}).",
            defaultValue = "1s")
    Duration refresh;

    @Option(
            names = "--metrics-port",
            paramLabel = "PORT",
            description =
                    "Port of the agent's metrics endpoint on 127.0.0.1; 0 picks a free one (default ${DEFAULT-VALUE}).",
            defaultValue = "9400")
    int metricsPort;

    @Option(
            names = "--sched-api-port",
            paramLabel = "PORT",
            description = "Port of the scheduler gRPC API on 127.0.0.1; 0 picks a free one (default ${DEFAULT-VALUE}).",
            defaultValue = "9401")
    int schedulerApiPort;

    @Option(
            names = "--work-dir",
            paramLabel = "DIR",
            description = "Where the simulated node lives (default: a new temporary directory, removed at exit).")
    Path workDir;

    @Option(names = "--keep", description = "Keep the work directory at exit (to inspect allocations afterwards).")
    boolean keep;

    @Option(names = "--plain", description = "Print each table below the last instead of redrawing the screen.")
    boolean plain;

    @Option(names = "--verbose", description = "Print the agent's log on the console instead of <work-dir>/agent.log.")
    boolean verbose;

    @Option(
            names = "--nodes",
            paramLabel = "N",
            description = "Simulate a cluster of N nodes (2..16) with the scheduler extender; 1 (default): one node, "
                    + "as described above. --metrics-port and --sched-api-port apply to one node only.",
            defaultValue = "1")
    int nodes;

    @Option(
            names = "--pods",
            paramLabel = "N",
            description = "With --nodes: how many sample pods to place (default: 6 per node).")
    Integer pods;

    @Option(
            names = "--seed",
            paramLabel = "N",
            description =
                    "With --nodes: the seed of the sample pod stream and of tie-breaking (default ${DEFAULT-VALUE}).",
            defaultValue = "15")
    long seed;

    @Override
    public Integer call() throws Exception {
        for (int[] port : new int[][] {{metricsPort}, {schedulerApiPort}}) {
            if (port[0] < 0 || port[0] > 65535) {
                throw new CommandLine.ParameterException(
                        new CommandLine(this), "port " + port[0] + " is not a TCP port; expected 0..65535");
            }
        }
        if (refresh.isNegative() || refresh.isZero()) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--refresh must be positive");
        }
        if (nodes < 1 || nodes > 16) {
            throw new CommandLine.ParameterException(
                    new CommandLine(this), "--nodes " + nodes + " is outside 1..16 (each node is an agent JVM)");
        }
        if (pods != null && (pods < 1 || pods > 1000)) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--pods " + pods + " is outside 1..1000");
        }
        if (nodes > 1) {
            return simulateCluster();
        }
        Path root = workDir != null ? Files.createDirectories(workDir) : Files.createTempDirectory("omai-simulate-");
        int port = metricsPort == 0 ? SimulatedAgentNode.freePort() : metricsPort;
        int apiPort = schedulerApiPort == 0 ? SimulatedAgentNode.freePort() : schedulerApiPort;
        PrintStream out = System.out;
        // since JDK 22 System.console() exists without a terminal too: redraw only on a real one
        boolean redraw = !plain
                && java.util.Optional.ofNullable(System.console())
                        .map(java.io.Console::isTerminal)
                        .orElse(false);
        CountDownLatch stopped = new CountDownLatch(1);
        SimulatedNode[] holder = new SimulatedNode[1];
        Thread cleanup = Thread.ofPlatform().unstarted(() -> shutdown(holder, root, out, stopped));
        Runtime.getRuntime().addShutdownHook(cleanup);
        long started = System.nanoTime();
        try {
            out.println("simulate: starting a simulated node in " + root);
            if (!verbose) {
                AgentLog.redirectTo(root.resolve("agent.log"));
                out.println("simulate: agent log in " + root.resolve("agent.log"));
            }
            holder[0] = new SimulatedNode(root, port, apiPort);
            out.printf(
                    Locale.ROOT,
                    "simulate: metrics on http://127.0.0.1:%d/metrics, probes on /healthz and /readyz%n",
                    holder[0].metricsPort());
            out.printf(
                    Locale.ROOT,
                    "simulate: scheduler API (omai.scheduler.v1, plaintext) on 127.0.0.1:%d%n",
                    holder[0].schedulerApiPort());
            out.printf(
                    Locale.ROOT,
                    "simulate: Kubernetes API (in-process, fabric8 mock server) on %s%n",
                    holder[0].kubernetesApi());
            Duration workloadTime = duration != null ? duration.plusSeconds(30) : Duration.ofDays(1);
            for (SamplePod pod : SamplePod.defaults()) {
                SimulatedNode.RunningPod running = holder[0].admit(pod, workloadTime);
                out.printf(
                        Locale.ROOT,
                        "simulate: admitted %s (the agent identified tenant %s; %d milli) as "
                                + "allocation %s on %s%s%n",
                        pod.name(),
                        running.tenant(),
                        pod.milli(),
                        running.allocationId(),
                        running.gpuUuids(),
                        running.vfs().isEmpty() ? "" : " with VF " + String.join(",", running.vfs()));
            }
            LiveTable table = new LiveTable(holder[0], System::nanoTime);
            long running = System.nanoTime();
            while (duration == null || System.nanoTime() - running < duration.toNanos()) {
                Thread.sleep(refresh.toMillis());
                String frame = table.render((System.nanoTime() - started) / 1_000_000);
                out.print(redraw ? "\033[H\033[2J" + frame : frame + "\n");
                out.flush();
            }
            out.printf(Locale.ROOT, "simulate: ran for %.1f s%n", (System.nanoTime() - started) / 1e9);
        } finally {
            Runtime.getRuntime().removeShutdownHook(cleanup);
            shutdown(holder, root, out, stopped);
        }
        return 0;
    }

    /** {@code --nodes N}: the cluster, the extender and the pod stream, with the cluster table. */
    private int simulateCluster() throws Exception {
        Path root = workDir != null ? Files.createDirectories(workDir) : Files.createTempDirectory("omai-simulate-");
        PrintStream out = System.out;
        boolean redraw = !plain
                && java.util.Optional.ofNullable(System.console())
                        .map(java.io.Console::isTerminal)
                        .orElse(false);
        CountDownLatch stopped = new CountDownLatch(1);
        AutoCloseable[] holder = new AutoCloseable[1];
        Thread cleanup = Thread.ofPlatform().unstarted(() -> shutdown(holder, root, out, stopped));
        Runtime.getRuntime().addShutdownHook(cleanup);
        long started = System.nanoTime();
        try {
            out.printf(Locale.ROOT, "simulate: starting a simulated cluster of %d nodes in %s%n", nodes, root);
            if (!verbose) {
                AgentLog.redirectTo(root.resolve("simulate.log"));
                out.println("simulate: extender and scheduler log in " + root.resolve("simulate.log")
                        + ", each agent's in " + root.resolve("node-N/agent-1.log"));
            }
            ClusterSimulation cluster = ClusterSimulation.start(root, nodes, pods != null ? pods : 6 * nodes, seed);
            holder[0] = cluster;
            out.printf(
                    Locale.ROOT,
                    "simulate: Kubernetes API (in-process, fabric8 mock server) on %s; scheduler extender on "
                            + "http://127.0.0.1:%d (filter, prioritize, bind)%n",
                    cluster.apiUrl(),
                    cluster.extenderPort());
            long placedAt = -1;
            while (true) {
                Thread.sleep(refresh.toMillis());
                String frame = cluster.render((System.nanoTime() - started) / 1_000_000);
                out.print(redraw ? "\033[H\033[2J" + frame : frame + "\n");
                out.flush();
                if (placedAt < 0 && cluster.done()) {
                    placedAt = System.nanoTime();
                }
                if (duration != null && placedAt >= 0 && System.nanoTime() - placedAt >= duration.toNanos()) {
                    break;
                }
            }
            out.printf(Locale.ROOT, "simulate: ran for %.1f s%n", (System.nanoTime() - started) / 1e9);
        } finally {
            Runtime.getRuntime().removeShutdownHook(cleanup);
            shutdown(holder, root, out, stopped);
        }
        return 0;
    }

    private void shutdown(AutoCloseable[] holder, Path root, PrintStream out, CountDownLatch stopped) {
        if (stopped.getCount() == 0) {
            return;
        }
        synchronized (stopped) {
            if (stopped.getCount() == 0) {
                return;
            }
            try {
                if (holder[0] != null) {
                    holder[0].close();
                }
                if (keep) {
                    out.println("simulate: stopped; kept " + root);
                } else {
                    ScratchDirectories.deleteTree(root);
                    out.println("simulate: stopped; removed " + root);
                }
            } catch (Exception e) {
                out.println("simulate: cleanup of " + root + " failed: " + e);
            } finally {
                stopped.countDown();
            }
        }
    }

    /** Durations as operators write them: 500ms, 30s, 2m, 1h. */
    static final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
        private static final Pattern FORMAT = Pattern.compile("(\\d+)\\s*(ms|s|m|h)");

        @Override
        public Duration convert(String value) {
            Matcher m = FORMAT.matcher(value.trim());
            if (!m.matches()) {
                throw new CommandLine.TypeConversionException(
                        "'" + value + "' is not a duration; expected a whole number with ms, s, m or h, e.g. 30s");
            }
            long amount = Long.parseLong(m.group(1));
            return switch (m.group(2)) {
                case "ms" -> Duration.ofMillis(amount);
                case "s" -> Duration.ofSeconds(amount);
                case "m" -> Duration.ofMinutes(amount);
                default -> Duration.ofHours(amount);
            };
        }
    }
}
