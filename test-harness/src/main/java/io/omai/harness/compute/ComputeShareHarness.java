package io.omai.harness.compute;

import io.omai.agent.gpu.nvml.FfmNvmlLibrary;
import io.omai.agent.gpu.nvml.NvmlDowncalls;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import io.omai.agent.quota.compute.NvmlProcessGpuTime;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.simulator.sim.SimNode;
import io.omai.simulator.util.ScratchDirectories;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The proof that compute quotas hold: saturating processes under the real shim share one simulated GPU while the
 * agent's real control loop grants their tokens, and the share each achieves is printed per 1 s window against its
 * quota (docs/benchmarks.md, "Compute shares").
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -Domai.native.build=native/build -cp ... \
 *     io.omai.harness.compute.ComputeShareHarness [--cases 300/700,200/300/500,250x4,wc,hc]
 *     [--settle S] [--hold S] [--kernel-ms MS] [--processes N] [--band POINTS] [--wc-min PERCENT]
 * </pre>
 *
 * <p>Cases: {@code A/B/...} and {@code QxN} are hard-capped saturating containers started together, judged on
 * every window after {@code settle} for {@code hold} seconds; {@code wc} is a lone work-conserving 300 that must
 * borrow the idle GPU (at least {@code wc-min} percent) until a 700 arrives, then be back at its share from the
 * second window after the arrival; {@code hc} is a lone hard-capped 300 that must stay at its share. Every window
 * is also printed as a {@code result op=window ...} line and every case as {@code result op=case ... verdict=}.
 * Exit status 0 when every case met its goal.
 *
 * <p>The simulated NVML reads {@code OMAI_SIM_CONFIG}/{@code OMAI_SIM_STATE} from the environment when this JVM
 * initialises it; when they are not set the harness runs itself again as a child JVM with them pointing at a
 * fresh directory.
 */
public final class ComputeShareHarness {
    private ComputeShareHarness() {}

    record Options(
            List<String> cases,
            double settle,
            double hold,
            double kernelMs,
            int processes,
            double band,
            double wcMin) {}

    private static final String USAGE = "usage: ComputeShareHarness [--cases 300/700,200/300/500,250x4,wc,hc]"
            + " [--settle S] [--hold S] [--kernel-ms MS] [--processes N] [--band POINTS] [--wc-min PERCENT]";

    public static void main(String[] args) throws Exception {
        if (List.of(args).contains("--help")) {
            System.out.println(USAGE);
            return;
        }
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("compute-share: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        if (System.getenv("OMAI_SIM_STATE") == null || System.getenv("OMAI_SIM_CONFIG") == null) {
            System.exit(againWithSimulatorEnvironment(args));
        }
        Path dir = Path.of(System.getenv("OMAI_SIM_STATE")).toAbsolutePath();
        SimNode node = SimNode.create(dir, 1, 80L << 30);
        if (!node.config().equals(Path.of(System.getenv("OMAI_SIM_CONFIG")).toAbsolutePath())) {
            System.err.println(
                    "compute-share: OMAI_SIM_CONFIG must be $OMAI_SIM_STATE/sim.conf (the harness writes it)");
            System.exit(2);
        }
        NvmlDowncalls.useLibrary(
                node.buildDir().resolve("sim/libnvidia-ml.so.1").toString());
        NvmlLibrary nvml = FfmNvmlLibrary.instance();
        int rc = nvml.nvmlInit_v2();
        if (rc != NvmlLibrary.NVML_SUCCESS) {
            System.err.println("compute-share: nvmlInit_v2: " + nvml.nvmlErrorString(rc));
            System.exit(1);
        }
        boolean allPassed = true;
        for (String name : o.cases()) {
            allPassed &= runCase(node, dir, nvml, name, o);
        }
        nvml.nvmlShutdown();
        System.exit(allPassed ? 0 : 1);
    }

    private static int againWithSimulatorEnvironment(String[] args) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("omai-compute-share");
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current()
                .info()
                .command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-Domai.native.build=" + SimNode.nativeBuildDir());
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(ComputeShareHarness.class.getName());
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).inheritIO();
        pb.environment().put("OMAI_SIM_STATE", dir.toString());
        pb.environment().put("OMAI_SIM_CONFIG", dir.resolve("sim.conf").toString());
        try {
            return pb.start().waitFor();
        } finally {
            try {
                ScratchDirectories.deleteTree(dir);
            } catch (IOException e) {
                System.err.println("compute-share harness: could not remove " + dir + ": " + e);
            }
        }
    }

    static Options parse(String[] args) {
        List<String> cases = List.of("300/700", "200/300/500", "250x4", "wc", "hc");
        double settle = 2;
        double hold = 10;
        double kernelMs = 4;
        int processes = 2;
        double band = 3;
        double wcMin = 90;
        for (int i = 0; i < args.length; i++) {
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(args[i] + " needs a value");
            }
            String value = args[++i];
            switch (args[i - 1]) {
                case "--cases" -> cases = List.of(value.split(","));
                case "--settle" -> settle = positive(args[i - 1], value);
                case "--hold" -> hold = positive(args[i - 1], value);
                case "--kernel-ms" -> kernelMs = positive(args[i - 1], value);
                case "--processes" -> processes = (int) positive(args[i - 1], value);
                case "--band" -> band = positive(args[i - 1], value);
                case "--wc-min" -> wcMin = positive(args[i - 1], value);
                default -> throw new IllegalArgumentException("unknown option " + args[i - 1]);
            }
        }
        for (String c : cases) {
            containersOf(c); // refuse a bad case before anything runs
        }
        if (processes < 1 || processes > 8) {
            throw new IllegalArgumentException("--processes " + processes + ": expected 1..8 per container");
        }
        return new Options(cases, settle, hold, kernelMs, processes, band, wcMin);
    }

    private static double positive(String option, String value) {
        try {
            double v = Double.parseDouble(value);
            if (v > 0 && v < 3600) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(
                option + " " + value + ": expected a number of seconds/ms/points in (0, 3600)");
    }

    /** Hard-capped containers started together: "300/700" or "250x4". */
    static List<ShareExperiment.Container> containersOf(String name) {
        List<Integer> quotas = new ArrayList<>();
        try {
            if (name.equals("wc") || name.equals("hc")) {
                return List.of();
            } else if (name.contains("x")) {
                String[] parts = name.split("x", -1);
                for (int i = 0; i < Integer.parseInt(parts[1]); i++) {
                    quotas.add(Integer.parseInt(parts[0]));
                }
            } else {
                for (String q : name.split("/", -1)) {
                    quotas.add(Integer.parseInt(q));
                }
            }
        } catch (NumberFormatException | ArrayIndexOutOfBoundsException e) {
            throw new IllegalArgumentException("case '" + name + "': expected A/B/..., QxN, wc or hc");
        }
        if (quotas.isEmpty()
                || quotas.size() > 16
                || quotas.stream().anyMatch(q -> q < 1 || q > 1000)
                || quotas.stream().mapToInt(Integer::intValue).sum() > 1000) {
            throw new IllegalArgumentException(
                    "case '" + name + "': 1..16 quotas of 1..1000 milli-GPU, at most 1000 in all");
        }
        List<ShareExperiment.Container> out = new ArrayList<>();
        for (int i = 0; i < quotas.size(); i++) {
            out.add(new ShareExperiment.Container("c" + i, quotas.get(i), ComputeMode.HARD_CAP, 0));
        }
        return out;
    }

    private static boolean runCase(SimNode node, Path dir, NvmlLibrary nvml, String name, Options o)
            throws IOException, InterruptedException {
        List<ShareExperiment.Container> containers;
        double seconds;
        String description;
        double arrival = 0;
        switch (name) {
            case "wc" -> {
                arrival = o.settle() + o.hold() / 2;
                containers = List.of(
                        new ShareExperiment.Container("c0", 300, ComputeMode.WORK_CONSERVING, 0),
                        new ShareExperiment.Container("c1", 700, ComputeMode.WORK_CONSERVING, arrival));
                seconds = arrival + 1 + o.hold() / 2;
                description = "work-conserving 300 alone, a work-conserving 700 arrives at " + fmt(arrival) + " s";
            }
            case "hc" -> {
                containers = List.of(new ShareExperiment.Container("c0", 300, ComputeMode.HARD_CAP, 0));
                seconds = o.settle() + o.hold();
                description = "hard-capped 300 alone";
            }
            default -> {
                containers = containersOf(name);
                seconds = o.settle() + o.hold();
                description = "hard caps, all saturating";
            }
        }
        ShareExperiment experiment =
                new ShareExperiment(node, dir, new NvmlProcessGpuTime(nvml), o.kernelMs(), o.processes());
        List<ShareExperiment.Window> windows = experiment.run(name, containers, seconds, 1.0);

        System.out.printf(
                Locale.ROOT,
                "%ncase %s: %s; %d process(es) per container, kernels %s ms, control "
                        + "period %d ms, 1 s windows: achieved %% of the GPU, and ms per second its launches waited for tokens%n",
                name,
                description,
                o.processes(),
                fmt(o.kernelMs()),
                ShareExperiment.CONTROL_PERIOD.toMillis());
        StringBuilder header = new StringBuilder(String.format(Locale.ROOT, "  %-9s", "window"));
        for (ShareExperiment.Container c : containers) {
            header.append(String.format(
                    Locale.ROOT,
                    " %14s %6s",
                    c.name() + " " + c.quotaMilli() + " " + (c.mode() == ComputeMode.HARD_CAP ? "HC" : "WC"),
                    "waited"));
        }
        System.out.println(header.append(String.format(Locale.ROOT, " %8s", "GPU busy")));
        double worst = 0;
        double lonePeak = Double.MAX_VALUE;
        for (ShareExperiment.Window w : windows) {
            StringBuilder row = new StringBuilder(
                    String.format(Locale.ROOT, "  %-9s", fmt(w.startSeconds()) + "-" + fmt(w.endSeconds()) + " s"));
            double total = 0;
            for (ShareExperiment.Container c : containers) {
                double a = w.achievedPercent().get(c.name());
                double waited = w.throttledMsPerSecond().get(c.name());
                total += a;
                row.append(String.format(Locale.ROOT, " %14.1f %6.0f", a, waited));
                System.out.printf(
                        Locale.ROOT,
                        "result op=window case=%s start_s=%s end_s=%s container=%s quota=%d "
                                + "mode=%s achieved=%.2f waited_ms_per_s=%.1f%n",
                        name,
                        fmt(w.startSeconds()),
                        fmt(w.endSeconds()),
                        c.name(),
                        c.quotaMilli(),
                        c.mode().name().toLowerCase(Locale.ROOT),
                        a,
                        waited);
            }
            System.out.println(row.append(String.format(Locale.ROOT, " %8.1f", total)));
            if (w.startSeconds() < o.settle() - 1e-9) {
                continue;
            }
            if (name.equals("wc") && w.startSeconds() < arrival - 1e-9) {
                lonePeak = Math.min(lonePeak, w.achievedPercent().get("c0"));
                continue;
            }
            if (name.equals("wc") && w.startSeconds() < arrival + 1 - 1e-9) {
                continue; // the second after the arrival is the hand-back
            }
            for (ShareExperiment.Container c : containers) {
                worst = Math.max(worst, Math.abs(w.achievedPercent().get(c.name()) - c.quotaMilli() / 10.0));
            }
        }
        boolean pass = worst <= o.band();
        String verdict;
        if (name.equals("wc")) {
            pass &= lonePeak >= o.wcMin();
            verdict = String.format(
                    Locale.ROOT,
                    "alone: at least %.1f %% in every window from %s s (goal >= %s); "
                            + "from %s s (1 s after the arrival): max |achieved - quota| %.1f points (goal <= %s)",
                    lonePeak,
                    fmt(o.settle()),
                    fmt(o.wcMin()),
                    fmt(arrival + 1),
                    worst,
                    fmt(o.band()));
            System.out.printf(
                    Locale.ROOT,
                    "result op=case case=%s lone_min=%.2f max_error=%.2f verdict=%s%n",
                    name,
                    lonePeak,
                    worst,
                    pass ? "PASS" : "FAIL");
        } else {
            verdict = String.format(
                    Locale.ROOT,
                    "max |achieved - quota| over windows from %s s to %s s: %.1f points " + "(goal <= %s)",
                    fmt(o.settle()),
                    fmt(seconds),
                    worst,
                    fmt(o.band()));
            System.out.printf(
                    Locale.ROOT,
                    "result op=case case=%s max_error=%.2f verdict=%s%n",
                    name,
                    worst,
                    pass ? "PASS" : "FAIL");
        }
        System.out.println("  " + (pass ? "PASS" : "FAIL") + ": " + verdict);
        return pass;
    }

    private static String fmt(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : String.format(Locale.ROOT, "%.1f", v);
    }
}
