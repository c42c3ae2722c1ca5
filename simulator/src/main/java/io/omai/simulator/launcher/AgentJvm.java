package io.omai.simulator.launcher;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The agent as a real separate JVM: {@code java -cp <this JVM's classpath> io.omai.agent.Main run --config FILE},
 * its output appended to a log file. {@link #kill()} is SIGKILL (no shutdown hook runs), {@link #stop()} SIGTERM.
 * For end-to-end tests, benchmarks and the {@code simulate} command.
 */
public final class AgentJvm implements AutoCloseable {
    private final Process process;
    private final Path log;

    private AgentJvm(Process process, Path log) {
        this.process = process;
        this.log = log;
    }

    /** JVM options for tests: small heap, quick start (C1 only). */
    public static final List<String> QUICK_START = List.of("-Xmx256m", "-XX:TieredStopAtLevel=1");

    /**
     * The agent's production JVM flags as one argument file, {@code @daemonset/jvm.options}: the file the image's
     * launcher and {@code ./omai run} read, found from the working directory upwards (Maven runs a module's tests
     * and benchmarks in the module's directory).
     */
    public static List<String> production() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path options = dir.resolve("daemonset").resolve("jvm.options");
            if (Files.isRegularFile(options)) {
                return List.of("@" + options);
            }
        }
        throw new IllegalStateException(
                "no daemonset/jvm.options in " + Path.of("").toAbsolutePath() + " or above");
    }

    /**
     * Starts {@code omai-agent run --config config} in a new JVM with {@code env} added to this process's
     * environment (e.g. the simulator's variables).
     */
    public static AgentJvm start(Path config, Map<String, String> env, Path log, List<String> jvmOptions) {
        // Under Surefire java.class.path is a manifest-only booter jar; the real classpath is in this property.
        String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        if (jvmOptions.stream().anyMatch(option -> option.startsWith("-XX:AOTCache"))) {
            // an AOT cache maps jars only (a non-empty directory refuses it); the agent needs none of the
            // directories (this module's own classes)
            classpath = java.util.Arrays.stream(classpath.split(java.io.File.pathSeparator))
                    .filter(entry -> !Files.isDirectory(Path.of(entry)))
                    .collect(java.util.stream.Collectors.joining(java.io.File.pathSeparator));
        }
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.add("--enable-native-access=ALL-UNNAMED");
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", classpath, "io.omai.agent.Main", "run", "--config", config.toString()));
        ProcessBuilder builder = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
        builder.environment().putAll(env);
        try {
            return new AgentJvm(builder.start(), log);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start the agent JVM", e);
        }
    }

    public long pid() {
        return process.pid();
    }

    public boolean alive() {
        return process.isAlive();
    }

    public String log() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /** Waits until the log contains {@code text}; fails with the log if the agent exits or time runs out. */
    public void awaitLog(String text, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (log().contains(text)) {
                return;
            }
            if (!process.isAlive()) {
                throw new AssertionError(
                        "agent exited with " + process.exitValue() + " before logging '" + text + "':\n" + log());
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
        throw new AssertionError("agent did not log '" + text + "' within " + timeout + ":\n" + log());
    }

    /** Waits for the agent to exit by itself (SIGKILL after {@code timeout}); returns its exit status. */
    public int waitFor(Duration timeout) throws InterruptedException {
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
        return process.exitValue();
    }

    /** SIGKILL: the agent gets no chance to clean up. */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(20, TimeUnit.SECONDS);
    }

    /** SIGTERM and wait; returns the exit status. */
    public int stop() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
        return process.exitValue();
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            try {
                kill();
            } catch (InterruptedException e) { // SIGKILL was sent; only the wait for it was cut short
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Stops every agent in turn (an interrupt while waiting for one is kept for the caller, see {@link #close}). */
    public static void closeAll(Iterable<AgentJvm> agents) {
        for (AgentJvm agent : agents) {
            agent.close();
        }
    }
}
