package io.omai.agent.metrics;

import static io.omai.agent.metrics.MetricsFixtures.GPUS;
import static io.omai.agent.metrics.MetricsFixtures.GPU_MEMORY;
import static io.omai.agent.metrics.MetricsFixtures.ids;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.HeldDevices;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GpuMetricsTest {
    @TempDir
    Path state;

    private final FakeNvml fake = new FakeNvml(GPUS);
    /** What the NVML telemetry functions answer, per NVML index and function; absent: NOT_SUPPORTED. */
    private final Map<Integer, Map<String, Long>> telemetry = new ConcurrentHashMap<>();
    /** XIDs the health monitor counted, per UUID. */
    private final Map<String, Map<Long, Long>> xids = new ConcurrentHashMap<>();

    private final Map<String, GpuHealth> health = new ConcurrentHashMap<>();
    private AllocationLedger ledger;
    private AgentMetrics metrics;

    @BeforeEach
    void start() throws Exception {
        GPUS.forEach(gpu -> health.put(gpu.uuid(), GpuHealth.healthy(gpu.uuid())));
        ledger = MetricsFixtures.ledger(state);
        metrics = new AgentMetrics("node-1", System::nanoTime);
        NvmlGpuReadings nvml = new NvmlGpuReadings(nvmlWithTelemetry(null));
        metrics.closeWith(nvml);
        metrics.bindGpus(NodeAgentSources.gpus(ledger, () -> Map.copyOf(health), () -> Map.copyOf(xids), nvml));
    }

    @AfterEach
    void stop() {
        metrics.close();
        ledger.close();
    }

    @Test
    void everyGpuHasItsSizeShareAndHealthLabelledByIndexUuidModelAndNode() {
        Scrape scrape = Scrape.of(metrics);
        for (var gpu : GPUS) {
            String[] labels = {
                "gpu", Integer.toString(gpu.index()), "uuid", gpu.uuid(), "model", "Fake GPU", "node", "node-1"
            };
            assertThat(scrape.get("omai_gpu_memory_total_bytes", labels)).isEqualTo(GPU_MEMORY);
            assertThat(scrape.get("omai_gpu_memory_allocated_bytes", labels)).isZero();
            assertThat(scrape.get("omai_gpu_compute_allocated_ratio", labels)).isZero();
            assertThat(scrape.get("omai_gpu_healthy", labels)).isEqualTo(1);
            assertThat(scrape.count("omai_gpu_utilization_ratio", labels))
                    .as("NVML cannot tell: no series, not a 0")
                    .isZero();
        }
    }

    @Test
    void allocationsUseAndHealthMoveTheGpusValues() throws Exception {
        var first = ledger.allocate(ids(0, 0, 300));
        var second = ledger.allocate(ids(0, 300, 200));
        nvml(0, "nvmlDeviceGetMemoryInfo", 7L << 30);
        nvml(0, "nvmlDeviceGetUtilizationRates", 64);
        health.put(FakeNvml.uuid(1), GpuHealth.unhealthy(FakeNvml.uuid(1), "XID 79"));

        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.get("omai_gpu_compute_allocated_ratio", "gpu", "0")).isEqualTo(0.5);
        assertThat(scrape.get("omai_gpu_memory_allocated_bytes", "gpu", "0")).isEqualTo(GPU_MEMORY / 2);
        assertThat(scrape.get("omai_gpu_memory_used_bytes", "gpu", "0")).isEqualTo(7L << 30);
        assertThat(scrape.get("omai_gpu_utilization_ratio", "gpu", "0")).isEqualTo(0.64);
        assertThat(scrape.get("omai_gpu_healthy", "gpu", "1")).isZero();
        assertThat(scrape.get("omai_gpu_compute_allocated_ratio", "gpu", "1")).isZero();

        ledger.reconcile(List.of(new HeldDevices("team-a/web-0/app", second.deviceIdStrings())), Duration.ZERO);
        fake.loseGpu(0);
        telemetry.remove(0); // a lost GPU answers no telemetry query either
        health.put(FakeNvml.uuid(1), GpuHealth.healthy(FakeNvml.uuid(1)));

        Scrape later = Scrape.of(metrics);
        assertThat(later.get("omai_gpu_compute_allocated_ratio", "gpu", "0"))
                .as("%s released", first.id())
                .isEqualTo(0.2);
        assertThat(later.get("omai_gpu_memory_allocated_bytes", "gpu", "0")).isEqualTo(GPU_MEMORY / 5);
        assertThat(later.count("omai_gpu_memory_used_bytes", "gpu", "0"))
                .as("NVML lost the GPU: its figures are gone")
                .isZero();
        assertThat(later.count("omai_gpu_utilization_ratio", "gpu", "0")).isZero();
        assertThat(later.get("omai_gpu_healthy", "gpu", "1")).isEqualTo(1);
    }

    @Test
    void nvmlTelemetryIsShownInBaseUnitsAndLeftOutWhereNotSupported() {
        nvml(0, "nvmlDeviceGetTemperature", 71);
        nvml(0, "nvmlDeviceGetPowerUsage", 250_125); // milliwatts
        nvml(0, "nvmlDeviceGetClockInfo/" + NvmlLibrary.NVML_CLOCK_SM, 1_410); // MHz
        nvml(0, "nvmlDeviceGetClockInfo/" + NvmlLibrary.NVML_CLOCK_MEM, 1_593);
        nvml(0, "nvmlDeviceGetTotalEccErrors/" + NvmlLibrary.NVML_MEMORY_ERROR_TYPE_CORRECTED, 5);
        nvml(1, "nvmlDeviceGetTemperature", 40);

        Scrape scrape = Scrape.of(metrics);
        String[] gpu0 = {"gpu", "0", "uuid", FakeNvml.uuid(0), "node", "node-1"};
        assertThat(scrape.get("omai_gpu_temperature_celsius", gpu0)).isEqualTo(71);
        assertThat(scrape.get("omai_gpu_power_watts", gpu0)).isEqualTo(250.125);
        assertThat(scrape.get("omai_gpu_sm_clock_hertz", gpu0)).isEqualTo(1.41e9);
        assertThat(scrape.get("omai_gpu_memory_clock_hertz", gpu0)).isEqualTo(1.593e9);
        assertThat(scrape.get("omai_gpu_ecc_errors_total", labels(gpu0, "type", "corrected")))
                .isEqualTo(5);
        assertThat(scrape.count("omai_gpu_ecc_errors_total", labels(gpu0, "type", "uncorrected")))
                .as("NOT_SUPPORTED: absent, not 0")
                .isZero();
        assertThat(scrape.get("omai_gpu_temperature_celsius", "gpu", "1")).isEqualTo(40);
        assertThat(scrape.count("omai_gpu_power_watts", "gpu", "1")).isZero();
        assertThat(scrape.text).contains("# TYPE omai_gpu_ecc_errors_total counter");
    }

    @Test
    void xidsAreCountedPerGpuByXid() {
        xids.put(FakeNvml.uuid(1), Map.of(79L, 1L, 13L, 4L));

        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.get("omai_gpu_xid_errors_total", "gpu", "1", "uuid", FakeNvml.uuid(1), "xid", "79"))
                .isEqualTo(1);
        assertThat(scrape.get("omai_gpu_xid_errors_total", "gpu", "1", "xid", "13"))
                .isEqualTo(4);
        assertThat(scrape.count("omai_gpu_xid_errors_total", "gpu", "0")).isZero();
    }

    @Test
    void aHungNvmlCostsOneBudgetAndNeverHoldsUpLaterScrapes() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        nvml(0, "nvmlDeviceGetTemperature", 50);
        try (NvmlGpuReadings hung = new NvmlGpuReadings(nvmlWithTelemetry(release), Duration.ofMillis(200))) {
            assertThat(hung.readAll(GPUS)).as("the read did not return in time").isEmpty();
            assertThat(hung.readAll(GPUS))
                    .as("no second read while the first is stuck")
                    .isEmpty();
            release.countDown();
            Map<String, Map<GpuTelemetry, Double>> after = org.awaitility.Awaitility.await()
                    .atMost(Duration.ofSeconds(10))
                    .until(() -> hung.readAll(GPUS), readings -> !readings.isEmpty());
            assertThat(after.get(FakeNvml.uuid(0))).containsEntry(GpuTelemetry.TEMPERATURE, 50.0);
        }
    }

    @Test
    void aGpuReadingRefusesValuesOutsideTheirRange() {
        assertThatThrownBy(() -> new GpuMetricsSource.GpuReading(
                        0, "GPU-x", "m", 1, 0, 0, 1000, true, Map.of(GpuTelemetry.UTILIZATION, 1.5), Map.of()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("utilisation 1.5");
        assertThatThrownBy(() -> new GpuMetricsSource.GpuReading(0, " ", "m", 1, 0, 0, 1000, true, Map.of(), Map.of()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("no UUID");
    }

    private void nvml(int gpu, String function, long value) {
        telemetry.computeIfAbsent(gpu, g -> new ConcurrentHashMap<>()).put(function, value);
    }

    private static String[] labels(String[] base, String... more) {
        String[] all = java.util.Arrays.copyOf(base, base.length + more.length);
        System.arraycopy(more, 0, all, base.length, more.length);
        return all;
    }

    /**
     * FakeNvml, with the telemetry functions answering from {@link #telemetry} as NVML does (through the pointer,
     * NOT_SUPPORTED when unset); with {@code hold}, the temperature query waits for it first (a hung driver).
     */
    private NvmlLibrary nvmlWithTelemetry(CountDownLatch hold) {
        return (NvmlLibrary) Proxy.newProxyInstance(
                NvmlLibrary.class.getClassLoader(), new Class<?>[] {NvmlLibrary.class}, (proxy, method, args) -> {
                    String name = method.getName();
                    if (name.equals("nvmlDeviceGetTemperature") && hold != null) {
                        hold.await();
                    }
                    String key = switch (name) {
                        case "nvmlDeviceGetClockInfo", "nvmlDeviceGetTotalEccErrors" -> name + "/" + args[1];
                        default -> name;
                    };
                    boolean answered = name.equals("nvmlDeviceGetUtilizationRates")
                            || name.equals("nvmlDeviceGetTemperature")
                            || name.equals("nvmlDeviceGetPowerUsage")
                            || name.equals("nvmlDeviceGetClockInfo")
                            || name.equals("nvmlDeviceGetTotalEccErrors");
                    if (answered) {
                        int gpu = index((MemorySegment) args[0]);
                        Long value = telemetry.getOrDefault(gpu, Map.of()).get(key);
                        if (value == null || gpu < 0) {
                            return NvmlLibrary.NVML_ERROR_NOT_SUPPORTED;
                        }
                        MemorySegment out = (MemorySegment) args[args.length - 1];
                        if (name.equals("nvmlDeviceGetTotalEccErrors")) {
                            out.set(JAVA_LONG, 0, value);
                        } else {
                            out.set(JAVA_INT, 0, (int) (long) value);
                        }
                        return NvmlLibrary.NVML_SUCCESS;
                    }
                    Object result;
                    try {
                        result = method.invoke(fake, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                    if (name.equals("nvmlDeviceGetMemoryInfo") && (int) result == NvmlLibrary.NVML_SUCCESS) {
                        ((MemorySegment) args[1])
                                .set(
                                        JAVA_LONG,
                                        16,
                                        telemetry
                                                .getOrDefault(index((MemorySegment) args[0]), Map.of())
                                                .getOrDefault(name, 0L));
                    }
                    return result;
                });
    }

    private int index(MemorySegment device) {
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            if (fake.nvmlDeviceGetIndex(device, out) != NvmlLibrary.NVML_SUCCESS) {
                return -1;
            }
            return out.get(JAVA_INT, 0);
        }
    }
}
