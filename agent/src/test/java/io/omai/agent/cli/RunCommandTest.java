package io.omai.agent.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code run} refuses bad configurations before it touches NVML or kubelet (starting it for real: test-harness e2e). */
class RunCommandTest {
    @TempDir
    Path dir;

    private record Result(int exit, String err) {}

    private static Result run(String... args) {
        CommandLine cli = OmaiCommand.commandLine();
        StringWriter err = new StringWriter();
        cli.setErr(new PrintWriter(err, true));
        int exit = cli.execute(args);
        return new Result(exit, err.toString());
    }

    @Test
    void aBadValueExitsWithTwoNamingKeyValueAndExpectation() throws Exception {
        Path config = dir.resolve("agent.yaml");
        Files.writeString(config, "version: 1\nsharing:\n  memoryPolicy: half\n");
        Result result = run("run", "--config", config.toString());
        assertThat(result.exit()).isEqualTo(RunCommand.EXIT_BAD_CONFIG);
        assertThat(result.err())
                .contains("bad configuration", "sharing.memoryPolicy", "'half'", "expected proportional or unlimited");
    }

    @Test
    void anUnknownKeyExitsWithTwo() throws Exception {
        Path config = dir.resolve("agent.yaml");
        Files.writeString(config, "version: 1\nkubelet:\n  reconcileIntervall: 5s\n");
        Result result = run("run", "--config", config.toString());
        assertThat(result.exit()).isEqualTo(RunCommand.EXIT_BAD_CONFIG);
        assertThat(result.err()).contains("kubelet.reconcileIntervall: is not a known key");
    }

    @Test
    void aDurationThatOverflowsExitsWithTwoNamingTheKey() throws Exception {
        Path config = dir.resolve("agent.yaml");
        Files.writeString(config, "version: 1\nkubelet:\n  releaseGracePeriod: 9223372036854775807h\n");
        Result result = run("run", "--config", config.toString());
        assertThat(result.exit()).isEqualTo(RunCommand.EXIT_BAD_CONFIG);
        assertThat(result.err())
                .contains(
                        "bad configuration",
                        "kubelet.releaseGracePeriod",
                        "'9223372036854775807h' is too large",
                        "0ms..24h")
                .doesNotContain("long overflow");
    }

    @Test
    void aKeyWrittenTwiceExitsWithTwoNamingTheKeyAndItsLines() throws Exception {
        Path config = dir.resolve("agent.yaml");
        Files.writeString(config, "version: 1\nshim:\n  hostLibrary: /a.so\n  hostLibrary: /b.so\n");
        Result result = run("run", "--config", config.toString());
        assertThat(result.exit()).isEqualTo(RunCommand.EXIT_BAD_CONFIG);
        assertThat(result.err()).contains("shim.hostLibrary: appears twice, at lines 3 and 4");
    }

    @Test
    void aMissingConfigFileExitsWithTwoNamingIt() {
        Path missing = dir.resolve("absent.yaml");
        Result result = run("run", "--config", missing.toString());
        assertThat(result.exit()).isEqualTo(RunCommand.EXIT_BAD_CONFIG);
        assertThat(result.err()).contains(missing.toString(), "cannot be read");
    }
}
