package io.omai.simulator.simulate;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The main job, as an operator runs it: {@code simulate} in its own JVM for a bounded time, checked by what it
 * printed. Bands are wide (2 shared cores); the exact control accuracy is the compute harness's business.
 */
class SimulateCommandTest {
    private static final Pattern POD_ROW = Pattern.compile(
            "(team-[ab]/[a-z]+-0)\\s+(team-[ab])\\s+(\\d)\\s+([\\d.]+)%\\s+(\\d+)%\\s+(\\S+ \\S+)/(\\S+ \\S+)\\s+(\\d+)%\\s+(\\d+)");

    @TempDir
    Path dir;

    @Test
    void simulatedNodeAdmitsTwoTenantsEnforcesTheirQuotasAndCleansUp() throws Exception {
        Path work = dir.resolve("node");
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process process = new ProcessBuilder(java.toString(), "--enable-native-access=ALL-UNNAMED",
                "-Domai.native.build=" + SimNode.nativeBuildDir(), "-cp", System.getProperty("java.class.path"),
                "io.omai.agent.Main", "simulate", "--duration", "12s", "--plain", "--metrics-port", "0",
                "--work-dir", work.toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("simulate.out").toFile()).start();
        boolean finished = process.waitFor(120, TimeUnit.SECONDS);
        if (!finished) {
            process.destroyForcibly();
        }
        String out = Files.readString(dir.resolve("simulate.out"), StandardCharsets.UTF_8);
        assertThat(finished).as("simulate ends by itself after --duration:%n%s", out).isTrue();
        assertThat(process.exitValue()).as(out).isZero();

        assertThat(out).contains("simulate: admitted team-a/trainer-0", "simulate: admitted team-b/infer-0",
                "simulate: admitted team-a/notebook-0", "simulate: admitted team-b/batch-0");
        String last = out.substring(out.lastIndexOf("OMAI simulated node"));
        assertThat(last).contains("metrics http://127.0.0.1:");

        // Each GPU holds one tenant's pods only.
        assertThat(last).containsPattern("\\n0\\s+GPU-\\S+\\s+900/1000\\s+\\S+ \\S+\\s+team-a\\s*\\n")
                .containsPattern("\\n1\\s+GPU-\\S+\\s+750/1000\\s+\\S+ \\S+\\s+team-b\\s*\\n");

        Matcher rows = POD_ROW.matcher(last);
        int seen = 0;
        while (rows.find()) {
            seen++;
            String pod = rows.group(1);
            double quota = Double.parseDouble(rows.group(4));
            int achieved = Integer.parseInt(rows.group(5));
            assertThat(achieved).as("%s achieved vs quota %s%% in%n%s", pod, quota, last)
                    .isLessThanOrEqualTo((int) quota + 12).isGreaterThanOrEqualTo(5);
            assertThat(rows.group(6)).as("%s holds the memory its workload allocated", pod).isNotEqualTo("0 B");
            assertThat(rows.group(9)).as("%s denied allocations", pod).isEqualTo("0");
        }
        assertThat(seen).as("pod rows in%n%s", last).isEqualTo(4);
        assertThat(last).containsPattern("4.00 GiB/40.00 GiB");
        assertThat(List.of(last.split("\n")).stream().filter(l -> l.contains("Healthy")).count())
                .as("4 VFs of the simulated HCA").isEqualTo(4);
        // The trainer took one VF through the agent's omai.io/ib-vf plugin; the table names it as its holder.
        assertThat(out).containsPattern("simulate: admitted team-a/trainer-0 .* with VF (0000:3b:\\S+)");
        assertThat(List.of(last.split("\n")).stream().filter(l -> l.matches("0000:3b:\\S+\\s+0000:3b:00\\.0\\s+"
                + "mlx5_\\d+\\s+team-a/trainer-0\\s+Healthy\\s*")).count())
                .as("one VF row allocated to the trainer in%n%s", last).isEqualTo(1);
        assertThat(last).containsPattern("\\nVF\\s+PF\\s+RDMA\\s+ALLOCATED\\s+HEALTH");

        assertThat(out).contains("simulate: stopped; removed " + work);
        assertThat(work).doesNotExist();
    }

    @Test
    void badOptionsAreRefusedWithWhatWasExpected() throws IOException, InterruptedException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process process = new ProcessBuilder(java.toString(), "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), "io.omai.agent.Main", "simulate", "--duration",
                "soon").redirectErrorStream(true).start();
        String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).isNotZero();
        assertThat(out).contains("'soon' is not a duration; expected a whole number with ms, s, m or h");
    }
}
