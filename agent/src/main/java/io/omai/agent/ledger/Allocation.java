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
 * @param owner "namespace/pod/container" once PodResources told us (or Allocate identified it), else empty
 * @param claim whom the allocation was made for (pod, tenant, memory quota), {@link AllocationClaim#UNKNOWN} when
 *     it was made or adopted without that knowledge
 */
public record Allocation(
        String id, List<MilliGpuId> deviceIds, Instant createdAt, String owner, AllocationClaim claim) {
    public Allocation {
        deviceIds = List.copyOf(deviceIds);
        owner = owner == null ? "" : owner;
        claim = claim == null ? AllocationClaim.UNKNOWN : claim;
    }

    /** An allocation whose pod and tenant are not known. */
    public Allocation(String id, List<MilliGpuId> deviceIds, Instant createdAt, String owner) {
        this(id, deviceIds, createdAt, owner, AllocationClaim.UNKNOWN);
    }

    /** The tenant of the pod holding it, "" when unknown. */
    public String tenant() {
        return claim.tenant();
    }

    /** The namespace of the pod it was made for: from its claim, else from kubelet's owner label; "" when unknown. */
    public String podNamespace() {
        return !claim.namespace().isEmpty() ? claim.namespace() : ownerPart(0);
    }

    /** The name of the pod it was made for: from its claim, else from kubelet's owner label; "" when unknown. */
    public String podName() {
        return !claim.pod().isEmpty() ? claim.pod() : ownerPart(1);
    }

    private String ownerPart(int index) {
        String[] parts = owner.split("/", 3);
        return parts.length == 3 ? parts[index] : "";
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
        return new Allocation(id, deviceIds, createdAt, newOwner, claim);
    }

    Allocation withClaim(AllocationClaim newClaim) {
        return new Allocation(
                id, deviceIds, createdAt, newClaim.owner().isEmpty() ? owner : newClaim.owner(), newClaim);
    }
}
