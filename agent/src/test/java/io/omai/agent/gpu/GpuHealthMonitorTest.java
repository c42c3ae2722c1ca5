package io.omai.agent.gpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

class GpuHealthMonitorTest {
    private static final List<GpuDevice> GPUS = FakeNvml.gpus(2, 80L << 30, 1);

    @Test
    void xidMakesOnlyThatGpuUnhealthyWithTheXidAsReasonThenItRecoversAfterTheDebounce() {
        FakeNvml nvml = new FakeNvml(GPUS);
        List<Map<String, GpuHealth>> published = new CopyOnWriteArrayList<>();
        try (GpuHealthMonitor monitor =
                new GpuHealthMonitor(nvml, GPUS, Duration.ofMillis(300), Set.of(13L), System::nanoTime)) {
            monitor.addListener(published::add);
            monitor.start();
            nvml.injectXid(1, 79);
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> !monitor.current().get(GPUS.get(1).uuid()).healthy());
            assertThat(monitor.current().get(GPUS.get(1).uuid()).reason()).isEqualTo("XID 79 (critical error event)");
            assertThat(monitor.current().get(GPUS.get(0).uuid()).healthy()).isTrue();
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> monitor.current().get(GPUS.get(1).uuid()).healthy());
        }
        assertThat(published)
                .anySatisfy(h -> assertThat(h.get(GPUS.get(1).uuid()).healthy()).isFalse());
        assertThat(published.getLast().get(GPUS.get(1).uuid()).healthy()).isTrue();
    }

    @Test
    void applicationXidsLeaveTheGpuHealthy() throws InterruptedException {
        FakeNvml nvml = new FakeNvml(GPUS);
        try (GpuHealthMonitor monitor =
                new GpuHealthMonitor(nvml, GPUS, Duration.ofSeconds(30), Set.of(13L, 43L), System::nanoTime)) {
            monitor.start();
            nvml.injectXid(0, 43);
            nvml.injectXid(0, 13);
            nvml.injectXid(1, 48); // a real one afterwards proves the two were processed
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> !monitor.current().get(GPUS.get(1).uuid()).healthy());
            assertThat(monitor.current().get(GPUS.get(0).uuid()).healthy()).isTrue();
            assertThat(monitor.xidCounts())
                    .as("omai_gpu_xid_errors_total counts ignored application XIDs too")
                    .containsEntry(GPUS.get(0).uuid(), java.util.Map.of(43L, 1L, 13L, 1L))
                    .containsEntry(GPUS.get(1).uuid(), java.util.Map.of(48L, 1L));
        }
    }

    @Test
    void aLostGpuStaysUnhealthyWhileNvmlFailsAndRecoversOnceItAnswers() {
        FakeNvml nvml = new FakeNvml(GPUS);
        try (GpuHealthMonitor monitor =
                new GpuHealthMonitor(nvml, GPUS, Duration.ofMillis(200), Set.of(), System::nanoTime)) {
            monitor.start();
            nvml.loseGpu(0);
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> !monitor.current().get(GPUS.get(0).uuid()).healthy());
            assertThat(monitor.current().get(GPUS.get(0).uuid()).reason())
                    .isEqualTo("NVML query failed: nvmlDeviceGetMemoryInfo: GPU is lost");
            nvml.restoreGpu(0);
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> monitor.current().get(GPUS.get(0).uuid()).healthy());
        }
    }

    @Test
    void whenHealthCheckingCannotStartEveryGpuIsUnhealthyWithTheReason() {
        FakeNvml nvml = new FakeNvml(GPUS);
        nvml.eventSetCreateResult = NvmlLibrary.NVML_ERROR_NOT_SUPPORTED;
        try (GpuHealthMonitor monitor =
                new GpuHealthMonitor(nvml, GPUS, Duration.ofMillis(100), Set.of(), System::nanoTime)) {
            monitor.start();
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> monitor.current().values().stream().noneMatch(GpuHealth::healthy));
            assertThat(monitor.current().values())
                    .allSatisfy(h -> assertThat(h.reason())
                            .isEqualTo("health checking could not start: nvmlEventSetCreate: Not Supported"));
        }
    }
}
