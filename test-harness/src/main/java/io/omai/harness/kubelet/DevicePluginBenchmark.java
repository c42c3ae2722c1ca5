package io.omai.harness.kubelet;

import io.omai.agent.config.ConfigLoader;
import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.kubelet.PluginEndpoint;
import io.omai.simulator.launcher.AgentJvm;
import io.omai.simulator.node.AgentYaml;
import io.omai.simulator.node.SimulatedAgentNode;
import io.omai.simulator.node.SimulatedNodePaths;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.IntConsumer;

/**
 * Latency of GetPreferredAllocation and Allocate as kubelet sees it: the agent in its own JVM on a simulated
 * node of 8 GPUs (8000 device IDs), called over its unix socket by the kubelet simulator's client. Prints p50,
 * p99 and max. Every Allocate is a new share whose IDs overlap an older one, so the agent sets up a new allocation
 * directory, removes the stale one and schedules a checkpoint. Allocate is measured twice: paced like kubelet
 * admitting pods (one call every {@value #PACE_MS} ms, so the spare allocation files keep up) and back to back
 * (the spares run out and files are created, and synced, on the request path). Then the same calls on the ledger
 * alone, in this JVM, without gRPC: the agent's own share of the time.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -Domai.native.build=native/build \
 *     -cp test-harness/target/classes:$(cat test-harness/target/benchmark.classpath) \
 *     io.omai.harness.kubelet.DevicePluginBenchmark [iterations [warmup [paced-iterations [production]]]]
 * </pre>
 */
public final class DevicePluginBenchmark {
    private static final String RESOURCE = "omai.io/milli-gpu";
    private static final int GPUS = 8;
    private static final int SHARE = 250;
    private static final int PACE_MS = 20;

    private DevicePluginBenchmark() {}

    public static void main(String[] args) throws Exception {
        int iterations = args.length > 0 ? Integer.parseInt(args[0]) : 5_000;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 2_000;
        int paced = args.length > 2 ? Integer.parseInt(args[2]) : 1_000;
        // "production": the agent runs with daemonset/jvm.options (C1 only, small serial heap) instead of C2
        List<String> jvmOptions =
                args.length > 3 && args[3].equals("production") ? AgentJvm.production() : List.of("-Xmx512m");
        Path root = Files.createTempDirectory("omai-dp-bench");
        SimNode sim = SimNode.create(root.resolve("sim"), GPUS, 80L << 30);
        SimulatedNodePaths paths = SimulatedNodePaths.under(root, sim);
        Path devicePlugins = paths.devicePlugins();
        Path podResources = paths.podResourcesSocket();
        Files.createDirectories(devicePlugins);
        Path config = AgentYaml.forNode("bench-node", paths)
                .set("kubelet.reconcileInterval", "1h")
                .metrics(SimulatedAgentNode.freePort())
                .schedulerApi(SimulatedAgentNode.freePort())
                .writeTo(root.resolve("agent.yaml"));
        try (KubeletSimulator kubelet = KubeletSimulator.start(devicePlugins, podResources);
                AgentJvm agent = AgentJvm.start(config, sim.env(), root.resolve("agent.log"), jvmOptions)) {
            agent.awaitLog("event=agent_started", Duration.ofSeconds(60));
            kubelet.awaitRegistration(RESOURCE, Duration.ofSeconds(30));
            List<Device> devices =
                    kubelet.awaitDevices(RESOURCE, list -> list.size() == GPUS * 1000, Duration.ofSeconds(10));
            PluginEndpoint plugin = kubelet.plugin(RESOURCE);
            List<String> all = devices.stream().map(Device::getID).toList();

            IntConsumer preferred = i -> plugin.preferredAllocation(all, List.of(), SHARE);
            int[] next = {0};
            IntConsumer allocate = i -> plugin.allocate(share(all, next[0]++));
            IntConsumer pace = i -> {
                try {
                    Thread.sleep(PACE_MS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            };
            System.out.printf(
                    Locale.ROOT,
                    "%d GPUs, %d device IDs; %d CPUs, load average %s%n",
                    GPUS,
                    all.size(),
                    Runtime.getRuntime().availableProcessors(),
                    loadAverage());
            IntConsumer roundTrip = i -> plugin.fetchOptions();
            measure(roundTrip, warmup, null);
            report("GetDevicePluginOptions (the socket round trip alone)", measure(roundTrip, iterations, null));
            report(
                    "GetDevicePluginOptions paced, one per " + PACE_MS + " ms (threads wake from idle)",
                    measure(roundTrip, paced, pace));
            measure(preferred, warmup, null);
            report(
                    "GetPreferredAllocation (" + all.size() + " candidate IDs, size " + SHARE + ")",
                    measure(preferred, iterations, null));
            measure(allocate, warmup, null);
            report("Allocate (" + SHARE + " IDs) paced, one per " + PACE_MS + " ms", measure(allocate, paced, pace));
            report("Allocate (" + SHARE + " IDs) back to back", measure(allocate, iterations, null));
            agent.stop();
        }
        ledgerOnly(root.resolve("ledger-only"), iterations, warmup, paced);
        System.out.println("state dir: " + root + " (file system of the checkpoint and allocation files)");
    }

    private static void ledgerOnly(Path state, int iterations, int warmup, int paced) throws Exception {
        List<GpuDevice> gpus = new java.util.ArrayList<>();
        for (int i = 0; i < GPUS; i++) {
            gpus.add(new GpuDevice(i, SimNode.uuidOf(i), "bench", i, 80L << 30, i / 4));
        }
        try (AllocationLedger ledger =
                AllocationLedger.open(gpus, ConfigLoader.defaults().sharing(), state, Clock.systemUTC())) {
            List<String> all = new java.util.ArrayList<>();
            for (GpuDevice gpu : gpus) {
                for (int slot = 0; slot < 1000; slot++) {
                    all.add(new MilliGpuId(gpu.uuid(), slot).id());
                }
            }
            int[] next = {0};
            IntConsumer preferred = i -> {
                try {
                    ledger.preferredAllocation(all, List.of(), SHARE);
                } catch (LedgerException e) {
                    throw new IllegalStateException(e);
                }
            };
            IntConsumer allocate = i -> {
                try {
                    ledger.allocate(share(all, next[0]++));
                } catch (LedgerException e) {
                    throw new IllegalStateException(e);
                }
            };
            IntConsumer pace = i -> {
                try {
                    Thread.sleep(PACE_MS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            };
            measure(preferred, warmup, null);
            report(
                    "ledger only: preferredAllocation (" + all.size() + " candidates, size " + SHARE + ")",
                    measure(preferred, iterations, null));
            measure(allocate, warmup, null);
            report("ledger only: allocate paced, one per " + PACE_MS + " ms", measure(allocate, paced, pace));
            report("ledger only: allocate back to back", measure(allocate, iterations, null));
        }
    }

    /** The i-th share: 250 consecutive IDs on GPU i%8, at an offset that moves so that sets overlap but differ. */
    private static List<String> share(List<String> all, int i) {
        int gpu = i % GPUS;
        int offset = (i / GPUS * 37) % (1000 - SHARE + 1);
        return all.subList(gpu * 1000 + offset, gpu * 1000 + offset + SHARE);
    }

    private static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim().split(" ", -1)[0];
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** Times {@code times} calls; {@code between} (not timed) runs before each, e.g. to pace them. */
    private static long[] measure(IntConsumer call, int times, IntConsumer between) {
        long[] nanos = new long[times];
        for (int i = 0; i < times; i++) {
            if (between != null) {
                between.accept(i);
            }
            long start = System.nanoTime();
            call.accept(i);
            nanos[i] = System.nanoTime() - start;
        }
        return nanos;
    }

    private static void report(String what, long[] nanos) {
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        System.out.printf(
                Locale.ROOT,
                "%-80s n=%d p50=%.3f ms p99=%.3f ms max=%.3f ms%n",
                what,
                sorted.length,
                percentile(sorted, 50) / 1e6,
                percentile(sorted, 99) / 1e6,
                sorted[sorted.length - 1] / 1e6);
    }

    private static long percentile(long[] sorted, int p) {
        int index = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, index))];
    }
}
