package io.omai.agent.deviceplugin;

import io.grpc.ManagedChannel;
import io.omai.agent.deviceplugin.podresources.v1.AllocatableResourcesRequest;
import io.omai.agent.deviceplugin.podresources.v1.ContainerDevices;
import io.omai.agent.deviceplugin.podresources.v1.ContainerResources;
import io.omai.agent.deviceplugin.podresources.v1.ListPodResourcesRequest;
import io.omai.agent.deviceplugin.podresources.v1.PodResources;
import io.omai.agent.deviceplugin.podresources.v1.PodResourcesListerGrpc;
import io.omai.agent.gpu.GpuDevice;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Which of our GPUs kubelet also knows as another plugin's whole-GPU devices ({@code nvidia.com/gpu}): asks
 * PodResources GetAllocatableResources (what that plugin advertises) and List (what containers hold of it).
 * NVIDIA's plugin names a GPU by UUID ({@code deviceIDStrategy: uuid}, the default), by NVML index
 * ({@code index}), or by {@code UUID::n} replicas under time-slicing; all three are matched. MIG devices have UUIDs
 * of their own and are not matched here (the agent does not share MIG-partitioned GPUs).
 */
public final class OtherPluginGpus {
    private final Path socket;
    private final String resourceName;
    private final List<GpuDevice> gpus;

    public OtherPluginGpus(Path socket, String resourceName, List<GpuDevice> gpus) {
        this.socket = socket;
        this.resourceName = resourceName;
        this.gpus = List.copyOf(gpus);
    }

    /**
     * GPU UUID → why it is withdrawn, for every one of our GPUs kubelet reports under the other resource.
     *
     * @throws io.grpc.StatusRuntimeException when kubelet cannot be asked (the caller keeps what it knew)
     */
    public Map<String, String> overlaps() {
        ManagedChannel channel = UnixSocketGrpc.channel(socket);
        try {
            var stub = PodResourcesListerGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS);
            Map<String, String> found = new LinkedHashMap<>();
            for (ContainerDevices devices : stub.getAllocatableResources(
                            AllocatableResourcesRequest.getDefaultInstance())
                    .getDevicesList()) {
                match(
                        devices,
                        "kubelet advertises it as " + resourceName + " (another device plugin's whole GPU)",
                        found);
            }
            for (PodResources pod :
                    stub.list(ListPodResourcesRequest.getDefaultInstance()).getPodResourcesList()) {
                for (ContainerResources container : pod.getContainersList()) {
                    for (ContainerDevices devices : container.getDevicesList()) {
                        match(
                                devices,
                                "container " + pod.getNamespace() + "/" + pod.getName() + "/" + container.getName()
                                        + " holds it as " + resourceName,
                                found);
                    }
                }
            }
            return found;
        } finally {
            UnixSocketGrpc.close(channel);
        }
    }

    private void match(ContainerDevices devices, String reason, Map<String, String> found) {
        if (!devices.getResourceName().equals(resourceName)) {
            return;
        }
        for (String id : devices.getDeviceIdsList()) {
            for (GpuDevice gpu : ours(id)) {
                found.putIfAbsent(gpu.uuid(), reason + " (device ID " + id + ")");
            }
        }
    }

    private List<GpuDevice> ours(String deviceId) {
        String base = deviceId.contains("::") ? deviceId.substring(0, deviceId.indexOf("::")) : deviceId;
        List<GpuDevice> matched = new ArrayList<>();
        for (GpuDevice gpu : gpus) {
            if (gpu.uuid().equals(base) || base.equals(Integer.toString(gpu.index()))) {
                matched.add(gpu);
            }
        }
        return matched;
    }
}
