package io.omai.simulator.simulate;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.simulator.sim.SimNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code simulate --nodes 2} as a new user runs it, in its own JVM: two agent JVMs, the extender and the
 * kube-scheduler stand-in place the sample pods; the table shows the nodes' GPUs and each pod's node, and the
 * run's figures say nothing failed.
 */
class SimulateClusterCommandTest {
    private static final Pattern GPU_ROW =
            Pattern.compile("(?m)^(node-[12])\\s+(\\d)\\s+(train|infer)\\s+(\\d+)/1000\\s+(\\d+)\\s+(\\S+)$");
    private static final Pattern POD_ROW =
            Pattern.compile("(?m)^(p\\d{3}-\\d+)\\s+(team-[abc])\\s+(\\d+)\\s+(\\d)\\s+(node-[12])\\s+admitted$");

    @TempDir
    Path dir;

    @Test
    void aSmallClusterPlacesAndAdmitsTheSamplePods() throws Exception {
        Path work = dir.resolve("cluster");
        Path log = dir.resolve("simulate.out");
        Process process = new ProcessBuilder(
                        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                        "--enable-native-access=ALL-UNNAMED",
                        "-Domai.native.build=" + SimNode.nativeBuildDir(),
                        "-cp",
                        System.getProperty("java.class.path"),
                        "io.omai.agent.Main",
                        "simulate",
                        "--nodes",
                        "2",
                        "--pods",
                        "8",
                        "--duration",
                        "1s",
                        "--refresh",
                        "500ms",
                        "--plain",
                        "--work-dir",
                        work.toString())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        boolean exited = process.waitFor(150, TimeUnit.SECONDS);
        if (!exited) {
            process.destroyForcibly();
        }
        String out = Files.readString(log, StandardCharsets.UTF_8);
        assertThat(exited)
                .as("simulate --nodes 2 exits after --duration:\n%s", out)
                .isTrue();
        assertThat(process.exitValue()).as(out).isZero();

        String last = out.substring(out.lastIndexOf("OMAI simulated cluster"));
        Matcher gpus = GPU_ROW.matcher(last);
        int rows = 0;
        int held = 0;
        while (gpus.find()) {
            rows++;
            held += Integer.parseInt(gpus.group(4));
            // a GPU holds at most one tenant
            assertThat(gpus.group(6)).doesNotContain(",");
        }
        assertThat(rows).as(last).isEqualTo(5); // node-1: 2 GPUs, node-2: 3
        Matcher pods = POD_ROW.matcher(last);
        int admittedMilli = 0;
        int admitted = 0;
        while (pods.find()) {
            admitted++;
            admittedMilli += Integer.parseInt(pods.group(3));
        }
        assertThat(admitted).as(last).isPositive();
        assertThat(held).as("the agents hold what kubelet admitted:\n%s", last).isEqualTo(admittedMilli);
        assertThat(last)
                .contains("event=cluster_result pods=8 ")
                .contains(" admission_failures=0 ")
                .contains(" co_locations=0 ")
                .contains(" over_commits=0");
        assertThat(out).contains("simulate: stopped; removed " + work);
        assertThat(work).doesNotExist();
    }
}
