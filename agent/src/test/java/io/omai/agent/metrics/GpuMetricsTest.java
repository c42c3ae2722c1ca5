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
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GpuMetricsTest {
    @TempDir
    Path state;

    private final FakeNvml fake = new FakeNvml(GPUS);
    /** Memory in use per NVML index, which FakeNvml does not model. */
    private final Map<Integer, Long> usedBytes = new ConcurrentHashMap<>();
    /** Utilisation percent per NVML index; absent: NOT_SUPPORTED. */
    private final Map<Integer, Integer> utilizationPercent = new ConcurrentHashMap<>();

    private final Map<String, GpuHealth> health = new ConcurrentHashMap<>();
    private AllocationLedger ledger;
    private AgentMetrics metrics;

    @BeforeEach
    void start() throws Exception {
        GPUS.forEach(gpu -> health.put(gpu.uuid(), GpuHealth.healthy(gpu.uuid())));
        ledger = MetricsFixtures.ledger(state);
        metrics = new AgentMetrics("node-1", System::nanoTime);
        NvmlGpuReadings nvml = new NvmlGpuReadings(nvmlWithMemoryUse(), (device, rates) -> {
            Integer percent = utilizationPercent.get(index(device));
            if (percent == null) {
                return NvmlLibrary.NVML_ERROR_NOT_SUPPORTED;
            }
            rates.set(JAVA_INT, 0, percent);
            return NvmlLibrary.NVML_SUCCESS;
        });
        metrics.bindGpus(NodeAgentSources.gpus(ledger, () -> Map.copyOf(health), nvml));
    }

    @AfterEach
    void stop() {
        metrics.close();
        ledger.close();
    }

    @Test
    void everyGpuHasItsSizeSharesAndHealthLabelledByIndexUuidModelAndNode() {
        Scrape scrape = Scrape.of(metrics);
        for (var gpu : GPUS) {
            String[] labels = {
                "gpu", Integer.toString(gpu.index()), "uuid", gpu.uuid(), "model", "Fake GPU", "node", "node-1"
            };
            assertThat(scrape.get("omai_gpu_memory_total_bytes", labels)).isEqualTo(GPU_MEMORY);
            assertThat(scrape.get("omai_gpu_memory_allocated_bytes", labels)).isZero();
            assertThat(scrape.get("omai_gpu_milli_allocated", labels)).isZero();
            assertThat(scrape.get("omai_gpu_milli_capacity", labels)).isEqualTo(1000);
            assertThat(scrape.get("omai_gpu_healthy", labels)).isEqualTo(1);
            assertThat(scrape.get("omai_gpu_utilization_ratio", labels))
                    .as("NVML cannot tell")
                    .isNaN();
        }
    }

    @Test
    void allocationsUseAndHealthMoveTheGpusValues() throws Exception {
        var first = ledger.allocate(ids(0, 0, 300));
        var second = ledger.allocate(ids(0, 300, 200));
        usedBytes.put(0, 7L << 30);
        utilizationPercent.put(0, 64);
        health.put(FakeNvml.uuid(1), GpuHealth.unhealthy(FakeNvml.uuid(1), "XID 79"));

        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.get("omai_gpu_milli_allocated", "gpu", "0")).isEqualTo(500);
        assertThat(scrape.get("omai_gpu_memory_allocated_bytes", "gpu", "0")).isEqualTo(GPU_MEMORY / 2);
        assertThat(scrape.get("omai_gpu_memory_used_bytes", "gpu", "0")).isEqualTo(7L << 30);
        assertThat(scrape.get("omai_gpu_utilization_ratio", "gpu", "0")).isEqualTo(0.64);
        assertThat(scrape.get("omai_gpu_healthy", "gpu", "1")).isZero();
        assertThat(scrape.get("omai_gpu_milli_allocated", "gpu", "1")).isZero();

        ledger.reconcile(List.of(new HeldDevices("team-a/web-0/app", second.deviceIdStrings())), Duration.ZERO);
        fake.loseGpu(0);
        utilizationPercent.remove(0); // a lost GPU answers no utilisation query either
        health.put(FakeNvml.uuid(1), GpuHealth.healthy(FakeNvml.uuid(1)));

        Scrape later = Scrape.of(metrics);
        assertThat(later.get("omai_gpu_milli_allocated", "gpu", "0"))
                .as("%s released", first.id())
                .isEqualTo(200);
        assertThat(later.get("omai_gpu_memory_allocated_bytes", "gpu", "0")).isEqualTo(GPU_MEMORY / 5);
        assertThat(later.get("omai_gpu_memory_used_bytes", "gpu", "0"))
                .as("NVML lost the GPU")
                .isNaN();
        assertThat(later.get("omai_gpu_utilization_ratio", "gpu", "0")).isNaN();
        assertThat(later.get("omai_gpu_healthy", "gpu", "1")).isEqualTo(1);
    }

    @Test
    void aGpuReadingRefusesValuesOutsideTheirRange() {
        assertThatThrownBy(() -> new GpuMetricsSource.GpuReading(0, "GPU-x", "m", 1, 0, 0, 0, 1000, 1.5, true))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("utilisation 1.5");
        assertThatThrownBy(() -> new GpuMetricsSource.GpuReading(0, " ", "m", 1, 0, 0, 0, 1000, 0, true))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("no UUID");
    }

    /** FakeNvml, with nvmlDeviceGetMemoryInfo also filling in {@code used}. */
    private NvmlLibrary nvmlWithMemoryUse() {
        return (NvmlLibrary) Proxy.newProxyInstance(
                NvmlLibrary.class.getClassLoader(), new Class<?>[] {NvmlLibrary.class}, (proxy, method, args) -> {
                    Object result;
                    try {
                        result = method.invoke(fake, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                    if (method.getName().equals("nvmlDeviceGetMemoryInfo")
                            && (int) result == NvmlLibrary.NVML_SUCCESS) {
                        ((MemorySegment) args[1])
                                .set(JAVA_LONG, 16, usedBytes.getOrDefault(index((MemorySegment) args[0]), 0L));
                    }
                    return result;
                });
    }

    private int index(MemorySegment device) {
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            fake.nvmlDeviceGetIndex(device, out);
            return out.get(JAVA_INT, 0);
        }
    }
}
