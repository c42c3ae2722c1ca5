package io.omai.agent.ledger;

import java.util.List;

/**
 * What kubelet's PodResources says one container holds of our resource.
 *
 * @param owner "namespace/pod/container"
 * @param deviceIds the container's milli-GPU device IDs
 */
public record HeldDevices(String owner, List<String> deviceIds) {
    public HeldDevices {
        deviceIds = List.copyOf(deviceIds);
    }
}
