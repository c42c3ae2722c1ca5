package io.omai.harness.compute;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Short runs of {@link ComputeShareHarness} as CI can afford them: real shim, real control loop, real reaper and
 * NVML binding against the simulated GPU, in a child JVM (the simulated NVML takes its configuration from the
 * environment). The bands are wide on purpose: two shared, often overloaded cores stall the simulator's
 * synchronous launches and the control loop alike; docs/benchmarks.md has the full runs with the ±3-point goal.
 */
class ComputeShareHarnessTest {
    private static final double BAND = 10;

    @Test
    void twoHardCappedContainersConvergeOnTheirQuotas() throws Exception {
        List<SimNode.Result> results = harness("--cases", "300/700", "--settle", "2", "--hold", "4");
        List<SimNode.Result> steady = windows(results, "300/700").stream()
                .filter(r -> Double.parseDouble(r.get("start_s")) >= 2)
                .toList();
        assertThat(steady).hasSize(8); // 4 windows x 2 containers
        for (SimNode.Result w : steady) {
            assertThat(Double.parseDouble(w.get("achieved")))
                    .as("%s", w)
                    .isCloseTo(Integer.parseInt(w.get("quota")) / 10.0, within(BAND));
        }
    }

    @Test
    void aLoneWorkConservingContainerBorrowsTheIdleGpuAndGivesItBackWhenAnotherArrives() throws Exception {
        // Alone from 0 s, judged from 2 s; a 700 arrives at 4 s; the 300 is judged back at its share from 5 s.
        List<SimNode.Result> results = harness("--cases", "wc", "--settle", "2", "--hold", "4");
        List<SimNode.Result> lone = new ArrayList<>();
        List<SimNode.Result> shared = new ArrayList<>();
        for (SimNode.Result w : windows(results, "wc")) {
            double start = Double.parseDouble(w.get("start_s"));
            if (start >= 2 && start < 4 && w.get("container").equals("c0")) {
                lone.add(w);
            } else if (start >= 5) {
                shared.add(w);
            }
        }
        assertThat(lone).hasSize(2);
        for (SimNode.Result w : lone) {
            assertThat(Double.parseDouble(w.get("achieved"))).as("alone: %s", w).isGreaterThanOrEqualTo(75);
        }
        assertThat(shared).hasSize(4);
        for (SimNode.Result w : shared) {
            assertThat(Double.parseDouble(w.get("achieved")))
                    .as("after the arrival: %s", w)
                    .isCloseTo(Integer.parseInt(w.get("quota")) / 10.0, within(BAND));
        }
    }

    private static List<SimNode.Result> windows(List<SimNode.Result> results, String caseName) {
        return results.stream()
                .filter(r -> r.op().equals("window") && r.get("case").equals(caseName))
                .toList();
    }

    /** Runs the harness's main in a child JVM with this classpath; returns its result lines. */
    private static List<SimNode.Result> harness(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED",
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                "-Domai.native.build=" + SimNode.nativeBuildDir(),
                "-cp",
                System.getProperty("java.class.path"),
                ComputeShareHarness.class.getName(),
                "--band",
                Double.toString(BAND),
                "--wc-min",
                "75"));
        cmd.addAll(List.of(args));
        Path output = Files.createTempFile("compute-share", ".out");
        try {
            Process p = new ProcessBuilder(cmd)
                    .redirectErrorStream(true)
                    .redirectOutput(output.toFile())
                    .start();
            boolean finished = p.waitFor(120, TimeUnit.SECONDS);
            if (!finished) {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
            String text = Files.readString(output, StandardCharsets.UTF_8);
            assertThat(finished)
                    .as("the harness did not finish within 120 s:\n%s", text)
                    .isTrue();
            assertThat(p.exitValue()).as(text).isZero();
            return SimNode.parse(text);
        } finally {
            Files.deleteIfExists(output);
        }
    }
}
