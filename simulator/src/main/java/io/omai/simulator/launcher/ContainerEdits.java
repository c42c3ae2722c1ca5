package io.omai.simulator.launcher;

import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.DeviceSpec;
import io.omai.agent.deviceplugin.v1beta1.Mount;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a runtime applies to a container for the devices it holds, whichever path handed them out: a device
 * plugin's Allocate response ({@link #of(ContainerAllocateResponse)}) or the CDI devices a DRA driver named
 * (the CDI resolver builds these from {@code containerEdits}). The launcher applies only this.
 *
 * @param env variables set in the container; later edits win, as a CDI runtime merges them
 * @param mounts bind mounts, in order
 * @param deviceNodes device nodes, in order
 */
public record ContainerEdits(Map<String, String> env, List<BindMount> mounts, List<DeviceNode> deviceNodes) {
    /** A bind mount of {@code hostPath} at {@code containerPath}, read-only where asked. */
    public record BindMount(String hostPath, String containerPath, boolean readOnly) {}

    /** A device node: {@code hostPath} on the host appears as {@code containerPath} in the container. */
    public record DeviceNode(String hostPath, String containerPath) {}

    public ContainerEdits {
        env = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(env));
        mounts = List.copyOf(mounts);
        deviceNodes = List.copyOf(deviceNodes);
    }

    /** Nothing to apply. */
    public static final ContainerEdits NONE = new ContainerEdits(Map.of(), List.of(), List.of());

    /** The edits a device plugin's Allocate response asks of the runtime. */
    public static ContainerEdits of(ContainerAllocateResponse allocation) {
        List<BindMount> mounts = new ArrayList<>();
        for (Mount mount : allocation.getMountsList()) {
            mounts.add(new BindMount(mount.getHostPath(), mount.getContainerPath(), mount.getReadOnly()));
        }
        List<DeviceNode> devices = new ArrayList<>();
        for (DeviceSpec device : allocation.getDevicesList()) {
            devices.add(new DeviceNode(device.getHostPath(), device.getContainerPath()));
        }
        return new ContainerEdits(allocation.getEnvsMap(), mounts, devices);
    }

    /**
     * These edits followed by {@code later}'s: env of {@code later} wins, mounts and device nodes are appended
     * (a later mount at the same container path covers the earlier one, as the runtime mounts them in order).
     */
    public ContainerEdits then(ContainerEdits later) {
        Map<String, String> mergedEnv = new LinkedHashMap<>(env);
        mergedEnv.putAll(later.env);
        List<BindMount> mergedMounts = new ArrayList<>(mounts);
        mergedMounts.addAll(later.mounts);
        List<DeviceNode> mergedDevices = new ArrayList<>(deviceNodes);
        for (DeviceNode node : later.deviceNodes) {
            if (!mergedDevices.contains(node)) {
                mergedDevices.add(node);
            }
        }
        return new ContainerEdits(mergedEnv, mergedMounts, mergedDevices);
    }
}
