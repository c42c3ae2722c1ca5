package io.omai.agent.gpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.util.List;
import org.junit.jupiter.api.Test;

class GpuInventoryTest {
    @Test
    void discoversEveryGpuWithUuidMinorMemoryAndNuma() throws NvmlException {
        List<GpuDevice> gpus = FakeNvml.gpus(4, 40L << 30, 2);
        GpuInventory inventory = new GpuInventory(new FakeNvml(gpus));
        inventory.initialise();
        assertThat(inventory.discover()).isEqualTo(gpus);
    }

    @Test
    void nvmlInitFailureNamesTheFunctionAndNvmlsReason() {
        FakeNvml nvml = new FakeNvml(List.of());
        nvml.initResult = NvmlLibrary.NVML_ERROR_GPU_IS_LOST;
        assertThatThrownBy(() -> new GpuInventory(nvml).initialise())
                .isInstanceOf(NvmlException.class)
                .hasMessage("nvmlInit_v2 failed: GPU is lost (nvmlReturn_t 15)");
    }
}
