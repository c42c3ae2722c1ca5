package io.omai.harness.footprint;

import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.kubelet.Registration;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.node.SimulatedAgentNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the agent costs a node: resident memory, idle CPU and start-up time of the real agent in its own JVM on a
 * simulated node of 8 GPUs, with 64 allocations admitted through the kubelet simulator (8 shares of 125 milli per
 * GPU, so the compute loop, the reaper and the audit all have work) and Prometheus scraping {@code /metrics}
 * every 15 s. Prints one {@code event=footprint_result} line with every figure and its target.
 *
 * <ul>
 *   <li>start to registered: from launching the agent's JVM to kubelet receiving its Register call;
 *   <li>RSS: {@code VmRSS} of {@code /proc/PID/status} after the idle window (and the peak, {@code VmHWM});
 *   <li>idle CPU: {@code utime+stime} of {@code /proc/PID/stat} over the idle window, as % of one core.
 * </ul>
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -Domai.native.build=native/build \
 *     -cp test-harness/target/classes:$(cat test-harness/target/benchmark.classpath) \
 *     io.omai.harness.footprint.FootprintBenchmark [--jvm-options=FILE|none] [--scrape-interval=15s] [--idle=60s]
 *     [--nmt] [--allocations=64] [--env=NAME=VALUE,...] [--aot-cache=FILE]
 * </pre>
 *
 * {@code --jvm-options} is an argument file as {@code java @FILE} reads it (default {@link AgentJvm#production()},
 * {@code daemonset/jvm.options}: the flags the image runs the agent with); {@code none} runs the JVM's defaults. {@code --nmt} adds native memory
 * tracking and prints {@code jcmd VM.native_memory summary}'s categories (NMT itself costs a few MiB, so the
 * recorded RSS comes from a run without it). {@code --aot-cache=FILE}: when FILE does not exist this run is the
 * training run that writes it ({@code -XX:AOTCacheOutput}); when it does, the agent starts from it
 * ({@code -XX:AOTCache}).
 */
public final class FootprintBenchmark {
    private static final String RESOURCE = "omai.io/milli-gpu";
    private static final int GPUS = 8;
    private static final long RSS_TARGET_MIB = 150;
    private static final double CPU_TARGET_PERCENT = 1.0;
    private static final long START_TARGET_MS = 2_000;
    private static final Pattern NMT_CATEGORY =
            Pattern.compile("-\\s+([A-Za-z][A-Za-z ]*?) \\(reserved=\\d+KB, committed=(\\d+)KB\\)");

    private FootprintBenchmark() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> options = options(args);
        Path jvmOptionsFile = options.containsKey("jvm-options")
                ? Path.of(options.get("jvm-options"))
                : Path.of(AgentJvm.production().getFirst().substring(1));
        Duration scrapeInterval = duration(options.getOrDefault("scrape-interval", "15s"));
        Duration idle = duration(options.getOrDefault("idle", "60s"));
        int allocations = Integer.parseInt(options.getOrDefault("allocations", "64"));
        boolean nmt = options.containsKey("nmt");
        int share = GPUS * 1000 / allocations;
        if (share < 1 || share >= 1000 || allocations % GPUS != 0) {
            throw new IllegalArgumentException(
                    "--allocations=" + allocations + ": expected a multiple of " + GPUS + " above " + GPUS);
        }

        List<String> jvmOptions = new ArrayList<>();
        if (!jvmOptionsFile.toString().equals("none")) {
            jvmOptions.add("@" + jvmOptionsFile.toAbsolutePath());
        }
        if (nmt) {
            jvmOptions.add("-XX:NativeMemoryTracking=summary");
        }
        String aotCache = options.get("aot-cache");
        if (aotCache != null) {
            // JEP 514: the first run is the training run and writes the cache as the agent exits; later runs map it
            Path cache = Path.of(aotCache).toAbsolutePath();
            jvmOptions.add(Files.isRegularFile(cache) ? "-XX:AOTCache=" + cache : "-XX:AOTCacheOutput=" + cache);
        }
        Path root = Files.createTempDirectory("omai-footprint");
        int metricsPort = SimulatedAgentNode.freePort();
        Map<String, String> environment = new LinkedHashMap<>();
        for (String pair : options.getOrDefault("env", "").split(",", -1)) {
            if (!pair.isEmpty()) {
                String[] nameValue = pair.split("=", 2);
                environment.put(nameValue[0], nameValue.length > 1 ? nameValue[1] : "");
            }
        }
        SimulatedAgentNode node = SimulatedAgentNode.create(root, GPUS, 80L << 30);
        Map<String, String> env = new LinkedHashMap<>(node.sim().env());
        env.putAll(environment);
        AgentJvm agent = null;
        try (node) {
            Path config = node.yaml("footprint-node")
                    .metrics(metricsPort)
                    .schedulerApi(SimulatedAgentNode.freePort())
                    .writeTo(root.resolve("agent.yaml"));
            KubeletSimulator kubelet = node.startKubelet();
            long launched = System.nanoTime();
            agent = AgentJvm.start(config, env, root.resolve("agent.log"), jvmOptions);
            Registration registration = kubelet.awaitRegistration(RESOURCE, SimulatedAgentNode.START_TIMEOUT);
            double registeredMs = (kubelet.startedNanos() + registration.nanosSinceKubeletStart() - launched) / 1e6;
            SimulatedAgentNode.awaitAdvertised(kubelet, GPUS);
            double advertisedMs = (System.nanoTime() - launched) / 1e6;

            for (int i = 0; i < allocations; i++) {
                kubelet.admit("footprint", "pod-" + i, "main", RESOURCE, share);
            }
            HttpClient http = HttpClient.newHttpClient();
            URI metrics = URI.create("http://127.0.0.1:" + metricsPort + "/metrics");
            int scrapeBytes = scrape(http, metrics);
            // let start-up work (JIT of the admission path, the first checkpoint, spares) finish before measuring
            Thread.sleep(Duration.ofSeconds(10));

            long pid = agent.pid();
            Map<String, Long> threadTicksBefore = threadTicks(pid);
            long ticksBefore = cpuTicks(pid);
            long idleStart = System.nanoTime();
            long nextScrape = idleStart + scrapeInterval.toNanos();
            int scrapes = 0;
            while (System.nanoTime() - idleStart < idle.toNanos()) {
                long now = System.nanoTime();
                if (now >= nextScrape) {
                    scrapeBytes = scrape(http, metrics);
                    scrapes++;
                    nextScrape += scrapeInterval.toNanos();
                }
                Thread.sleep(Duration.ofNanos(
                        Math.max(1_000_000, Math.min(nextScrape, idleStart + idle.toNanos()) - System.nanoTime())));
            }
            long idleNanos = System.nanoTime() - idleStart;
            long ticks = cpuTicks(pid) - ticksBefore;
            String busiestThreads = busiest(threadTicksBefore, threadTicks(pid));
            double cpuPercent = ticks * 1e9 / clockTicksPerSecond() / idleNanos * 100;
            Map<String, Long> status = status(pid);
            long rssMib = status.get("VmRSS") / 1024;
            Map<String, Long> rollup = smapsRollup(pid);
            if (!agent.alive()) {
                throw new IllegalStateException("the agent exited during the run:\n" + agent.log());
            }

            System.out.printf(
                    Locale.ROOT,
                    "jvm options: %s %s%n%d GPUs, %d allocations of %d milli, /metrics every %s (%d bytes), "
                            + "idle window %s, %d CPUs, load average %s%n",
                    jvmOptionsFile.toString().equals("none") ? "(JVM defaults)" : readOptions(jvmOptionsFile),
                    String.join(
                            " ",
                            jvmOptions.subList(jvmOptionsFile.toString().equals("none") ? 0 : 1, jvmOptions.size())),
                    GPUS,
                    allocations,
                    share,
                    scrapeInterval,
                    scrapeBytes,
                    idle,
                    Runtime.getRuntime().availableProcessors(),
                    loadAverage());
            System.out.printf(
                    Locale.ROOT,
                    "smaps_rollup: anonymous %d MiB, file-backed %d MiB; threads %d; peak RSS %d MiB%n",
                    rollup.getOrDefault("Anonymous", 0L) / 1024,
                    (rollup.getOrDefault("Rss", 0L) - rollup.getOrDefault("Anonymous", 0L)) / 1024,
                    status.get("Threads"),
                    status.get("VmHWM") / 1024);
            System.out.println("idle CPU by thread (ticks over the window): " + busiestThreads);
            if (nmt) {
                System.out.println("native memory (committed): " + nativeMemory(pid));
            }
            System.out.printf(
                    Locale.ROOT,
                    "event=footprint_result rss_mib=%d rss_target_mib=%d rss_ok=%s peak_rss_mib=%d "
                            + "idle_cpu_percent=%.2f idle_cpu_target_percent=%.1f idle_cpu_ok=%s scrapes=%d "
                            + "start_to_registered_ms=%.0f start_target_ms=%d start_ok=%s "
                            + "start_to_advertised_ms=%.0f threads=%d%n",
                    rssMib,
                    RSS_TARGET_MIB,
                    rssMib <= RSS_TARGET_MIB,
                    status.get("VmHWM") / 1024,
                    cpuPercent,
                    CPU_TARGET_PERCENT,
                    cpuPercent <= CPU_TARGET_PERCENT,
                    scrapes,
                    registeredMs,
                    START_TARGET_MS,
                    registeredMs <= START_TARGET_MS,
                    advertisedMs,
                    status.get("Threads"));
            int exit = agent.stop();
            if (exit != 0) {
                throw new IllegalStateException("the agent stopped with exit code " + exit + ":\n" + agent.log());
            }
        } finally {
            if (agent != null) {
                agent.close(); // SIGKILL if the run failed before stopping it; the node then stops the kubelet
            }
        }
    }

    private static int scrape(HttpClient http, URI metrics) throws IOException, InterruptedException {
        HttpResponse<byte[]> response =
                http.send(HttpRequest.newBuilder(metrics).build(), HttpResponse.BodyHandlers.ofByteArray());
        if (response.statusCode() != 200) {
            throw new IllegalStateException("GET " + metrics + " answered " + response.statusCode());
        }
        return response.body().length;
    }

    /** utime + stime of the process, in clock ticks (fields 14 and 15; the name in field 2 may hold spaces). */
    private static long cpuTicks(long pid) throws IOException {
        String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
        String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ", -1);
        return Long.parseLong(fields[11]) + Long.parseLong(fields[12]);
    }

    /** utime + stime per thread, keyed by "name/tid" (a thread pool's threads share a name). */
    private static Map<String, Long> threadTicks(long pid) throws IOException {
        Map<String, Long> ticks = new LinkedHashMap<>();
        try (var tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            for (Path task : tasks.toList()) {
                try {
                    String stat = Files.readString(task.resolve("stat"));
                    String name = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
                    String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ", -1);
                    ticks.put(name + "/" + task.getFileName(), Long.parseLong(fields[11]) + Long.parseLong(fields[12]));
                } catch (IOException e) { // the thread ended between the listing and the read
                }
            }
        }
        return ticks;
    }

    /** The threads that used CPU between two readings, busiest first (threads started since count from 0). */
    private static String busiest(Map<String, Long> before, Map<String, Long> after) {
        return after.entrySet().stream()
                .map(e -> Map.entry(e.getKey(), e.getValue() - before.getOrDefault(e.getKey(), 0L)))
                .filter(e -> e.getValue() > 0)
                .sorted(Map.Entry.<String, Long>comparingByValue().reversed())
                .limit(8)
                .map(e -> e.getKey() + " " + e.getValue())
                .reduce((a, b) -> a + ", " + b)
                .orElse("(none)");
    }

    private static long clockTicksPerSecond() {
        try {
            Process getconf = new ProcessBuilder("getconf", "CLK_TCK").start();
            String text = new String(getconf.getInputStream().readAllBytes(), StandardCharsets.US_ASCII).strip();
            return getconf.waitFor() == 0 ? Long.parseLong(text) : 100;
        } catch (IOException | NumberFormatException e) {
            return 100; // USER_HZ on every Linux architecture the agent runs on
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 100;
        }
    }

    /** The kB and count fields of {@code /proc/PID/status} (VmRSS, VmHWM, Threads, ...). */
    private static Map<String, Long> status(long pid) throws IOException {
        return numericFields(Path.of("/proc", Long.toString(pid), "status"));
    }

    private static Map<String, Long> smapsRollup(long pid) throws IOException {
        return numericFields(Path.of("/proc", Long.toString(pid), "smaps_rollup"));
    }

    private static Map<String, Long> numericFields(Path file) throws IOException {
        Map<String, Long> fields = new LinkedHashMap<>();
        for (String line : Files.readAllLines(file)) {
            int colon = line.indexOf(':');
            if (colon <= 0) {
                continue;
            }
            String[] value = line.substring(colon + 1).strip().split("\\s+", 2);
            if (value.length > 0 && value[0].matches("\\d+")) {
                fields.put(line.substring(0, colon), Long.parseLong(value[0]));
            }
        }
        return fields;
    }

    /** {@code jcmd PID VM.native_memory summary}: committed MiB per category, largest first. */
    private static String nativeMemory(long pid) throws IOException, InterruptedException {
        Path jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd");
        Process process = new ProcessBuilder(jcmd.toString(), Long.toString(pid), "VM.native_memory", "summary")
                .redirectErrorStream(true)
                .start();
        String text = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        process.waitFor();
        Map<String, Long> committed = new LinkedHashMap<>();
        Matcher m = NMT_CATEGORY.matcher(text);
        while (m.find()) {
            committed.merge(m.group(1).strip(), Long.parseLong(m.group(2)) / 1024, Long::sum);
        }
        return committed.entrySet().stream()
                .filter(e -> e.getValue() > 0)
                .sorted(Map.Entry.<String, Long>comparingByValue().reversed())
                .map(e -> e.getKey() + " " + e.getValue() + " MiB")
                .reduce((a, b) -> a + ", " + b)
                .orElse("(no NMT output: " + text.strip() + ")");
    }

    private static String readOptions(Path file) {
        try {
            return Files.readAllLines(file).stream()
                    .map(String::strip)
                    .filter(line -> !line.isEmpty() && !line.startsWith("#"))
                    .reduce((a, b) -> a + " " + b)
                    .orElse("");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the JVM options file " + file, e);
        }
    }

    private static Map<String, String> options(String[] args) {
        Map<String, String> options = new LinkedHashMap<>();
        for (String arg : args) {
            if (!arg.startsWith("--")) {
                throw new IllegalArgumentException("'" + arg + "': expected --name=value; see the class comment");
            }
            String[] parts = arg.substring(2).split("=", 2);
            if (!List.of("jvm-options", "scrape-interval", "idle", "nmt", "allocations", "env", "aot-cache")
                    .contains(parts[0])) {
                throw new IllegalArgumentException(
                        "'" + arg + "' is not an option; expected --jvm-options=FILE|none, "
                                + "--scrape-interval=15s, --idle=60s, --allocations=64, --env=NAME=VALUE,..., --aot-cache=FILE or --nmt");
            }
            options.put(parts[0], parts.length > 1 ? parts[1] : "");
        }
        return options;
    }

    private static Duration duration(String text) {
        if (text.endsWith("ms")) {
            return Duration.ofMillis(Long.parseLong(text.substring(0, text.length() - 2)));
        }
        if (text.endsWith("s")) {
            return Duration.ofSeconds(Long.parseLong(text.substring(0, text.length() - 1)));
        }
        throw new IllegalArgumentException("'" + text + "' is not a duration; expected e.g. 15s or 500ms");
    }

    private static String loadAverage() {
        try {
            return Arrays.stream(Files.readString(Path.of("/proc/loadavg")).split(" ", 4))
                    .limit(3)
                    .reduce((a, b) -> a + " " + b)
                    .orElse("?");
        } catch (IOException e) {
            return "?";
        }
    }
}
