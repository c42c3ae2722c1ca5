package io.omai.agent.dra;

import io.omai.agent.gpu.GpuDevice;
import java.util.List;
import java.util.Optional;

/** The ResourceSlice device name of a GPU: {@code gpu-<NVML index>}, stable across restarts of the agent. */
final class DeviceNames {
    private DeviceNames() {}

    static String of(GpuDevice gpu) {
        return "gpu-" + gpu.index();
    }

    static Optional<GpuDevice> gpu(List<GpuDevice> gpus, String name) {
        return gpus.stream().filter(gpu -> of(gpu).equals(name)).findFirst();
    }

    static List<String> names(List<GpuDevice> gpus) {
        return gpus.stream().map(DeviceNames::of).toList();
    }
}
