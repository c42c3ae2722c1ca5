package io.omai.agent.dra;

import io.omai.agent.gpu.GpuDevice;
import java.util.List;
import java.util.Optional;

/**
 * ResourceSlice device names (DNS labels): {@code gpu-<NVML index>} for a GPU, {@code vf-<PCI address>} for a VF with
 * {@code :} and {@code .} as {@code -} (e.g. {@code vf-0000-3b-00-2}); both stable across restarts of the agent.
 */
final class DeviceNames {
    private DeviceNames() {}

    static String of(GpuDevice gpu) {
        return "gpu-" + gpu.index();
    }

    static Optional<GpuDevice> gpu(List<GpuDevice> gpus, String name) {
        return gpus.stream().filter(gpu -> of(gpu).equals(name)).findFirst();
    }

    static String ofVf(String pciAddress) {
        return "vf-" + pciAddress.replace(':', '-').replace('.', '-');
    }

    static List<String> names(List<GpuDevice> gpus) {
        return gpus.stream().map(DeviceNames::of).toList();
    }
}
