package io.omai.agent.gpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.omai.agent.gpu.nvml.FfmNvmlLibrary;
import io.omai.agent.gpu.nvml.NvmlDowncalls;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The FFM binding against the simulated NVML (native/build/sim/libnvidia-ml.so.1): real downcalls, real
 * struct layouts, real events. Surefire points OMAI_SIM_CONFIG/OMAI_SIM_STATE at target/nvml-sim (the simulator
 * reads them when NVML initialises); this class writes that config first.
 */
class FfmNvmlLibraryTest {
    static final String UUID0 = "GPU-00000000-0000-4000-8000-0000000000a0";
    static final String UUID1 = "GPU-00000000-0000-4000-8000-0000000000a1";

    static Path nativeBuild() {
        return Path.of(System.getProperty("omai.native.build", "../native/build"))
                .toAbsolutePath()
                .normalize();
    }

    static Path simLibrary() {
        return nativeBuild().resolve("sim/libnvidia-ml.so.1");
    }

    @BeforeAll
    static void writeSimulatorConfig() throws IOException {
        Path config = Path.of(System.getenv("OMAI_SIM_CONFIG"));
        Path state = Path.of(System.getenv("OMAI_SIM_STATE"));
        Files.createDirectories(state);
        Files.deleteIfExists(state.resolve("sim-state"));
        Files.writeString(config, """
                gpu index=0 uuid=%s name="Sim A" memory=85899345920 pci=0000:17:00.0 numa=0 sms=132
                gpu index=1 uuid=%s name="Sim B" memory=42949672960 pci=0000:18:00.0 numa=1 sms=132
                """.formatted(UUID0, UUID1));
        NvmlDowncalls.useLibrary(simLibrary().toString());
    }

    @Test
    void discoversTheSimulatedGpusThroughRealDowncalls() throws NvmlException {
        GpuInventory inventory = new GpuInventory(FfmNvmlLibrary.instance());
        inventory.initialise();
        List<GpuDevice> gpus = inventory.discover();
        assertThat(gpus).extracting(GpuDevice::uuid).containsExactly(UUID0, UUID1);
        assertThat(gpus).extracting(GpuDevice::memoryBytes).containsExactly(80L << 30, 40L << 30);
        assertThat(gpus).extracting(GpuDevice::numaNode).containsExactly(0, 1);
        assertThat(gpus.get(0).name()).isEqualTo("Sim A");
    }

    @Test
    void anInjectedXidMakesTheGpuUnhealthyThroughNvmlEventSetWait() throws Exception {
        NvmlLibrary nvml = FfmNvmlLibrary.instance();
        GpuInventory inventory = new GpuInventory(nvml);
        inventory.initialise();
        List<GpuDevice> gpus = inventory.discover();
        try (GpuHealthMonitor monitor =
                new GpuHealthMonitor(nvml, gpus, Duration.ofMinutes(5), Set.of(), System::nanoTime)) {
            monitor.start();
            Thread.sleep(700); // the event set is registered on the monitor thread; only later events count
            Process ctl = new ProcessBuilder(
                            nativeBuild().resolve("bin/omai-sim-ctl").toString(), "inject-xid", "1", "48")
                    .redirectErrorStream(true)
                    .start();
            assertThat(ctl.waitFor(10, TimeUnit.SECONDS)).isTrue();
            assertThat(ctl.exitValue())
                    .as(new String(ctl.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8))
                    .isZero();
            await().atMost(Duration.ofSeconds(10))
                    .until(() -> !monitor.current().get(UUID1).healthy());
            assertThat(monitor.current().get(UUID1).reason()).isEqualTo("XID 48 (critical error event)");
            assertThat(monitor.current().get(UUID0).healthy()).isTrue();
        }
    }

    @Test
    void aMissingLibraryIsALinkageErrorNamingIt() {
        assertThatThrownBy(() -> NvmlDowncalls.open("/nonexistent/libnvidia-ml.so.1"))
                .isInstanceOf(LinkageError.class)
                .hasMessageContaining("/nonexistent/libnvidia-ml.so.1");
    }

    @Test
    void aMissingSymbolIsALinkageErrorNamingSymbolAndLibrary() {
        String library = simLibrary().toString();
        assertThatThrownBy(() -> NvmlDowncalls.required(
                        NvmlDowncalls.open(library),
                        library,
                        "nvmlNoSuchCall",
                        FunctionDescriptor.of(ValueLayout.JAVA_INT)))
                .isInstanceOf(LinkageError.class)
                .hasMessage("Native function nvmlNoSuchCall could not be found in " + library);
    }
}
