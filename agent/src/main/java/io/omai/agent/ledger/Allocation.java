package io.omai.agent.ledger;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One container's share: the device IDs kubelet allocated, on one GPU (a share below 1000) or on whole GPUs.
 *
 * @param id stable name, derived from the device IDs ({@code a-<hash>}); names the allocation's directory
 * @param deviceIds the milli-GPU IDs, sorted
 * @param createdAt when the ledger first recorded it
 * @param owner "namespace/pod/container" once PodResources told us, else empty
 */
public record Allocation(String id, List<MilliGpuId> deviceIds, Instant createdAt, String owner) {
    public Allocation {
        deviceIds = List.copyOf(deviceIds);
        owner = owner == null ? "" : owner;
    }

    /** Milli units per GPU, in GPU UUID order. */
    public Map<String, Integer> milliPerGpu() {
        Map<String, Integer> perGpu = new LinkedHashMap<>();
        for (MilliGpuId device : deviceIds) {
            perGpu.merge(device.uuid(), 1, Integer::sum);
        }
        return perGpu;
    }

    /** The GPU UUIDs this allocation uses, sorted. */
    public List<String> gpuUuids() {
        return new ArrayList<>(milliPerGpu().keySet());
    }

    /** Total milli units (1000 per whole GPU). */
    public int milli() {
        return deviceIds.size();
    }

    public List<String> deviceIdStrings() {
        return deviceIds.stream().map(MilliGpuId::id).toList();
    }

    Allocation withOwner(String newOwner) {
        return new Allocation(id, deviceIds, createdAt, newOwner);
    }
}
