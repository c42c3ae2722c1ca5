package io.omai.agent.metrics.contract;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Prometheus' own checker, {@code promtool}, for every test that lints what the agent serves or ships: scrapes
 * ({@code check metrics}), alerting rules ({@code check rules}, {@code test rules}). The one place that finds and
 * runs it (agent, simulator and harness tests use it through the agent's test jar).
 */
public final class Promtool {
    private Promtool() {}

    /** What promtool printed (stdout and stderr) and how it exited. */
    public record Result(int exitCode, String output) {}

    /** promtool on the PATH. */
    public static Optional<Path> find() {
        String path = System.getenv("PATH");
        if (path == null) {
            return Optional.empty();
        }
        return Arrays.stream(path.split(File.pathSeparator, -1))
                .filter(dir -> !dir.isEmpty())
                .map(dir -> Path.of(dir, "promtool"))
                .filter(Files::isExecutable)
                .findFirst();
    }

    /** Skips the calling test, saying what was NOT checked, where promtool is missing. */
    public static Path assumeInstalled(String notChecked) {
        Optional<Path> promtool = find();
        assumeTrue(
                promtool.isPresent(),
                "promtool is not on the PATH, so " + notChecked + " was NOT checked: install Debian's 'prometheus' "
                        + "package (apt-get install -y --no-install-recommends prometheus), as .ci/run does");
        return promtool.get();
    }

    /** Runs {@code promtool args...} with {@code stdin} (may be empty) and waits up to a minute. */
    public static Result run(String stdin, String... args) {
        Path promtool = assumeInstalled("promtool " + String.join(" ", args));
        List<String> command = new ArrayList<>();
        command.add(promtool.toString());
        command.addAll(List.of(args));
        try {
            Process process =
                    new ProcessBuilder(command).redirectErrorStream(true).start();
            try (var in = process.getOutputStream()) {
                in.write(stdin.getBytes(StandardCharsets.UTF_8));
            }
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!process.waitFor(60, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new AssertionError("promtool " + String.join(" ", args) + " did not finish in 60 s");
            }
            return new Result(process.exitValue(), output);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot run " + promtool, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted waiting for promtool", e);
        }
    }

    /** {@code promtool check metrics} on a scrape: empty when clean, else its findings. */
    public static String checkMetrics(String scrape) {
        Result result = run(scrape, "check", "metrics");
        return result.exitCode() == 0 && result.output().isBlank()
                ? ""
                : "exit " + result.exitCode() + ": " + result.output();
    }
}
