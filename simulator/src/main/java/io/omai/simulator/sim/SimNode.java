package io.omai.simulator.sim;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * One simulated GPU node for tests: a simulator config with N GPUs and a state
 * directory in a folder of the caller's, plus helpers that run the native
 * programs (workloads, NVML query, omai-sim-ctl) against it as real processes
 * and parse their {@code result op=... key=value} lines. See docs/simulator.md.
 */
public final class SimNode {

    /** A simulated GPU as written to the config file. */
    public record Gpu(String uuid, String name, long memoryBytes, String pciBusId, int numaNode, int sms) {
        public Gpu {
            Objects.requireNonNull(uuid, "uuid");
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(pciBusId, "pciBusId");
            if (memoryBytes <= 0) {
                throw new IllegalArgumentException("memoryBytes must be positive, got " + memoryBytes);
            }
        }

        /** An H100-like GPU numbered {@code index}: deterministic UUID and PCI address. */
        public static Gpu h100(int index, long memoryBytes) {
            return new Gpu(
                    uuidOf(index),
                    "NVIDIA H100 80GB HBM3",
                    memoryBytes,
                    String.format(Locale.ROOT, "0000:%02x:00.0", 0x17 + index),
                    0,
                    132);
        }

        String configLine(int index) {
            return String.format(
                    Locale.ROOT,
                    "gpu index=%d uuid=%s name=\"%s\" memory=%d pci=%s numa=%d sms=%d",
                    index,
                    uuid,
                    name,
                    memoryBytes,
                    pciBusId,
                    numaNode,
                    sms);
        }
    }

    /** One {@code result} line: its op and its key=value fields (quotes removed). */
    public record Result(String op, Map<String, String> fields) {
        public String get(String key) {
            String v = fields.get(key);
            if (v == null) {
                throw new IllegalArgumentException("result op=" + op + " has no field '" + key + "': " + fields);
            }
            return v;
        }

        public long getLong(String key) {
            return Long.parseLong(get(key));
        }

        /** The status field: a CUresult name for CUDA programs, an nvmlReturn_t number for NVML. */
        public String status() {
            return get("status");
        }
    }

    /** A finished program: exit code, parsed results and the raw output. */
    public record Run(int exitCode, List<Result> results, String stdout, String stderr) {
        public List<Result> all(String op) {
            return results.stream().filter(r -> r.op().equals(op)).toList();
        }

        public Result first(String op) {
            return results.stream()
                    .filter(r -> r.op().equals(op))
                    .findFirst()
                    .orElseThrow(() ->
                            new AssertionError("no result op=" + op + " in:\n" + stdout + "\nstderr:\n" + stderr));
        }
    }

    private final Path buildDir;
    private final Path dir;
    private final Path config;
    private final List<Gpu> gpus;

    private SimNode(Path buildDir, Path dir, List<Gpu> gpus) {
        this.buildDir = buildDir;
        this.dir = dir;
        this.config = dir.resolve("sim.conf");
        this.gpus = List.copyOf(gpus);
    }

    /** A node of {@code gpuCount} H100-like GPUs with {@code memoryBytes} each, in {@code dir}. */
    public static SimNode create(Path dir, int gpuCount, long memoryBytes) {
        if (gpuCount < 1 || gpuCount > 16) {
            throw new IllegalArgumentException("gpuCount must be 1..16, got " + gpuCount);
        }
        List<Gpu> list = new ArrayList<>();
        for (int i = 0; i < gpuCount; i++) {
            list.add(Gpu.h100(i, memoryBytes));
        }
        return create(dir, list);
    }

    /** A node with exactly these GPUs; writes the config file into {@code dir}. */
    public static SimNode create(Path dir, List<Gpu> gpus) {
        SimNode node = new SimNode(nativeBuildDir(), dir, gpus);
        StringBuilder text = new StringBuilder("# written by io.omai.simulator.sim.SimNode\n");
        for (int i = 0; i < gpus.size(); i++) {
            text.append(gpus.get(i).configLine(i)).append('\n');
        }
        node.writeConfig(text.toString());
        return node;
    }

    /** The deterministic UUID of GPU {@code index} in nodes made by {@link #create(Path, int, long)}. */
    public static String uuidOf(int index) {
        return String.format(Locale.ROOT, "GPU-00000000-0000-4000-8000-%012x", index);
    }

    /** The native build directory: system property {@code omai.native.build}, else ../native/build. */
    public static Path nativeBuildDir() {
        String prop = System.getProperty("omai.native.build");
        Path path = prop != null && !prop.isBlank() ? Path.of(prop) : Path.of("..", "native", "build");
        return path.toAbsolutePath().normalize();
    }

    /** Replaces the config file's text verbatim (for tests of bad configs). */
    public void writeConfig(String text) {
        try {
            Files.createDirectories(dir);
            Files.writeString(config, text, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write simulator config " + config, e);
        }
    }

    public Path config() {
        return config;
    }

    public Path stateDir() {
        return dir;
    }

    public Path buildDir() {
        return buildDir;
    }

    public List<Gpu> gpus() {
        return gpus;
    }

    /** A program built into {@code <build>/bin}. */
    public Path program(String name) {
        return buildDir.resolve("bin").resolve(name);
    }

    /** The environment a process needs to use this node's simulated driver. */
    public Map<String, String> env() {
        Map<String, String> env = new LinkedHashMap<>();
        env.put("OMAI_SIM_CONFIG", config.toString());
        env.put("OMAI_SIM_STATE", dir.toString());
        env.put("LD_LIBRARY_PATH", buildDir.resolve("sim").toString());
        return env;
    }

    /** A process builder for {@code program args...} with {@link #env()} (plus extra) applied. */
    public ProcessBuilder command(Map<String, String> extraEnv, String program, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(program(program).toString());
        Collections.addAll(cmd, args);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env());
        pb.environment().putAll(extraEnv);
        return pb;
    }

    /** Runs a program to completion (killing it after {@code timeout}). */
    public Run run(Duration timeout, String program, String... args) {
        return start(Map.of(), program, args).finish(timeout);
    }

    public Started start(String program, String... args) {
        return start(Map.of(), program, args);
    }

    /** Starts a program; its output is collected as it comes. */
    public Started start(Map<String, String> extraEnv, String program, String... args) {
        try {
            return new Started(command(extraEnv, program, args).start());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + program(program) + " (built by make -C native all?)", e);
        }
    }

    /** Parses every {@code result ...} line of a program's output. */
    public static List<Result> parse(String output) {
        List<Result> results = new ArrayList<>();
        for (String line : output.split("\n", -1)) {
            if (line.startsWith("result ")) {
                results.add(parseLine(line.substring("result ".length())));
            }
        }
        return results;
    }

    static Result parseLine(String text) {
        Map<String, String> fields = new LinkedHashMap<>();
        int i = 0;
        int n = text.length();
        while (i < n) {
            while (i < n && text.charAt(i) == ' ') {
                i++;
            }
            int eq = text.indexOf('=', i);
            if (i >= n || eq < 0) {
                break;
            }
            String key = text.substring(i, eq);
            int v = eq + 1;
            String value;
            if (v < n && text.charAt(v) == '"') {
                int close = text.indexOf('"', v + 1);
                if (close < 0) {
                    throw new IllegalArgumentException("unterminated quote in result line: " + text);
                }
                value = text.substring(v + 1, close);
                i = close + 1;
            } else {
                int space = text.indexOf(' ', v);
                int end = space < 0 ? n : space;
                value = text.substring(v, end);
                i = end;
            }
            fields.put(key, value);
        }
        String op = fields.remove("op");
        if (op == null) {
            throw new IllegalArgumentException("result line without op=: " + text);
        }
        return new Result(op, Collections.unmodifiableMap(new HashMap<>(fields)));
    }

    /** A running program whose stdout/stderr are drained by background threads. */
    public static final class Started {
        private final Process process;
        private final StringBuilder out = new StringBuilder();
        private final StringBuilder err = new StringBuilder();
        private final Thread outReader;
        private final Thread errReader;

        Started(Process process) {
            this.process = process;
            this.outReader = Thread.ofVirtual().start(() -> drain(process.getInputStream(), out));
            this.errReader = Thread.ofVirtual().start(() -> drain(process.getErrorStream(), err));
        }

        private void drain(InputStream in, StringBuilder sink) {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (this) {
                        sink.append(line).append('\n');
                        notifyAll();
                    }
                }
            } catch (IOException e) {
                // The process was killed: what was read so far is all there is.
            }
        }

        public Process process() {
            return process;
        }

        public long pid() {
            return process.pid();
        }

        /** Waits until a {@code result op=<op>} line has appeared and returns it. */
        public Result awaitResult(String op, Duration timeout) {
            long deadline = System.nanoTime() + timeout.toNanos();
            synchronized (this) {
                while (true) {
                    for (Result r : parse(out.toString())) {
                        if (r.op().equals(op)) {
                            return r;
                        }
                    }
                    long left = deadline - System.nanoTime();
                    if (left <= 0 || (!process.isAlive() && !outReader.isAlive())) {
                        throw new AssertionError(
                                "no result op=" + op + " within " + timeout + "; stdout:\n" + out + "stderr:\n" + err);
                    }
                    try {
                        wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(left), 50)));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new AssertionError("interrupted waiting for op=" + op, e);
                    }
                }
            }
        }

        /** SIGKILLs the process and waits for it to be gone. */
        public void kill() {
            process.destroyForcibly();
            try {
                process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /** Waits for the program to exit (SIGKILL after timeout) and returns what it printed. */
        public Run finish(Duration timeout) {
            try {
                if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    process.destroyForcibly();
                    process.waitFor(10, TimeUnit.SECONDS);
                }
                outReader.join(Duration.ofSeconds(10));
                errReader.join(Duration.ofSeconds(10));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for the program", e);
            }
            String stdout;
            String stderr;
            synchronized (this) {
                stdout = out.toString();
                stderr = err.toString();
            }
            return new Run(process.exitValue(), parse(stdout), stdout, stderr);
        }
    }
}
