package io.omai.agent.tenancy;

import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.quota.shm.DeviceQuota;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The node's GPUs and what the ledger's allocations hold on them, as the reservation core reads capacity: milli,
 * memory quotas and tenants per GPU (see {@link #tenantOf}: an allocation of an unknown pod counts as tenant
 * {@link TenantIdentity#UNKNOWN}, so no known tenant is placed beside it). Withdrawn GPUs read unhealthy.
 * No VFs: the milli-GPU side does not hand them out.
 */
public record LedgerNodeCapacity(String nodeName, List<Gpu> gpus) implements NodeCapacity {
    /** One GPU's size and load. */
    public record Gpu(String uuid, int milliCapacity, int milliAllocated, long memoryBytes, long memoryAllocatedBytes,
                      boolean healthy, Set<String> tenants) implements GpuCapacity {
        public Gpu {
            tenants = Set.copyOf(tenants);
        }
    }

    public LedgerNodeCapacity {
        gpus = List.copyOf(gpus);
    }

    /** Reads the ledger now. */
    public static LedgerNodeCapacity of(String nodeName, AllocationLedger ledger, GpuWithdrawals withdrawals) {
        Map<String, Integer> milli = new HashMap<>();
        Map<String, Long> memory = new HashMap<>();
        Map<String, Set<String>> tenants = new HashMap<>();
        for (Allocation allocation : ledger.allocations()) {
            String tenant = tenantOf(allocation);
            allocation.milliPerGpu().forEach((uuid, share) -> {
                milli.merge(uuid, share, Integer::sum);
                tenants.computeIfAbsent(uuid, u -> new TreeSet<>()).add(tenant);
            });
            if (allocation.gpuUuids().stream().allMatch(uuid -> ledger.gpu(uuid) != null)) {
                for (DeviceQuota quota : ledger.spec(allocation).devices()) {
                    if (!quota.memoryUnlimited()) {
                        memory.merge(quota.uuid(), quota.memoryLimitBytes(), Long::sum);
                    }
                }
            }
        }
        List<Gpu> gpus = new ArrayList<>();
        for (GpuDevice gpu : ledger.gpus()) {
            gpus.add(new Gpu(gpu.uuid(), MilliGpuId.SLOTS_PER_GPU, milli.getOrDefault(gpu.uuid(), 0),
                    gpu.memoryBytes(), memory.getOrDefault(gpu.uuid(), 0L), !withdrawals.isWithdrawn(gpu.uuid()),
                    tenants.getOrDefault(gpu.uuid(), Set.of())));
        }
        return new LedgerNodeCapacity(nodeName, gpus);
    }

    /**
     * The tenant an allocation counts as: the one recorded when it was made; else, once PodResources named its
     * container, the pod's namespace (the default identity; labels are learned when the pod informer sees the
     * pod); else {@link TenantIdentity#UNKNOWN}.
     */
    public static String tenantOf(Allocation allocation) {
        if (allocation.claim().tenantKnown()) {
            return allocation.tenant();
        }
        int slash = allocation.owner().indexOf('/');
        return slash > 0 ? allocation.owner().substring(0, slash) : TenantIdentity.UNKNOWN;
    }

    @Override
    public Set<String> vfIds() {
        return Set.of();
    }

    @Override
    public Set<String> freeVfIds() {
        return Set.of();
    }
}
