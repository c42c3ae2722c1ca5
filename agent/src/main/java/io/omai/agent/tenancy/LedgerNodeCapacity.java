package io.omai.agent.tenancy;

import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.placement.MilliGpu;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * The node's GPUs and what the ledger's allocations hold on them, as the reservation core reads capacity: milli,
 * memory quotas and tenants per GPU (see {@link #tenantOf}: an allocation of an unknown pod counts as tenant
 * {@link TenantIdentity#UNKNOWN}, so no known tenant is placed beside it). Withdrawn GPUs read unhealthy.
 * No VFs: the milli-GPU side does not hand them out.
 */
public record LedgerNodeCapacity(String nodeName, List<Gpu> gpus) implements NodeCapacity {
    /** One GPU's size and load. */
    public record Gpu(
            String uuid,
            int index,
            int numaNode,
            int milliCapacity,
            int milliAllocated,
            long memoryBytes,
            long memoryAllocatedBytes,
            boolean healthy,
            Set<String> tenants)
            implements GpuCapacity {
        public Gpu {
            tenants = Set.copyOf(tenants);
        }
    }

    public LedgerNodeCapacity {
        gpus = List.copyOf(gpus);
    }

    /** What the ledger's allocations hold on one GPU. */
    public record GpuLoad(int milli, long memoryBytes, Set<String> tenants) {
        static final GpuLoad NONE = new GpuLoad(0, 0, Set.of());
    }

    /** Reads the ledger now. */
    public static LedgerNodeCapacity of(String nodeName, AllocationLedger ledger, GpuWithdrawals withdrawals) {
        return of(nodeName, ledger, withdrawals, Set.of());
    }

    /** Reads the ledger now, leaving out the {@code departed} allocations (see {@link CapacityModel#read}). */
    public static LedgerNodeCapacity of(
            String nodeName, AllocationLedger ledger, GpuWithdrawals withdrawals, Set<String> departed) {
        Map<String, GpuLoad> loads = loads(ledger, departed, LedgerNodeCapacity::tenantOf);
        List<Gpu> gpus = new ArrayList<>();
        for (GpuDevice gpu : ledger.gpus()) {
            GpuLoad load = loads.getOrDefault(gpu.uuid(), GpuLoad.NONE);
            gpus.add(new Gpu(
                    gpu.uuid(),
                    gpu.index(),
                    gpu.hasNumaNode() ? gpu.numaNode() : -1,
                    MilliGpu.PER_GPU,
                    load.milli(),
                    gpu.memoryBytes(),
                    load.memoryBytes(),
                    !withdrawals.isWithdrawn(gpu.uuid()),
                    load.tenants()));
        }
        return new LedgerNodeCapacity(nodeName, gpus);
    }

    /**
     * The one computation of what allocations hold per GPU, for the admission gate, the reservation book and the
     * scheduler API's node state alike. An allocation's memory is its quota; an unlimited quota counts as the
     * card's memory in proportion to its milli (what a share below a whole GPU may expect), so milli and memory
     * never disagree about whether a GPU is full. An allocation on a GPU the node no longer has counts nowhere.
     *
     * @param departed allocations to leave out
     * @param tenantOf the tenant an allocation counts as; "" counts none
     */
    public static Map<String, GpuLoad> loads(
            AllocationLedger ledger, Set<String> departed, Function<Allocation, String> tenantOf) {
        Map<String, Integer> milli = new HashMap<>();
        Map<String, Long> memory = new HashMap<>();
        Map<String, Set<String>> tenants = new HashMap<>();
        for (Allocation allocation : ledger.allocations()) {
            if (departed.contains(allocation.id())
                    || !allocation.gpuUuids().stream().allMatch(uuid -> ledger.gpu(uuid) != null)) {
                continue;
            }
            String tenant = tenantOf.apply(allocation);
            for (DeviceQuota quota : ledger.spec(allocation).devices()) {
                GpuDevice gpu = ledger.gpu(quota.uuid());
                milli.merge(quota.uuid(), quota.computeQuotaMilli(), Integer::sum);
                long bytes = quota.memoryUnlimited()
                        ? MilliGpu.defaultMemory(quota.computeQuotaMilli(), gpu.memoryBytes())
                        : quota.memoryLimitBytes();
                memory.merge(quota.uuid(), bytes, Long::sum);
                if (!tenant.isEmpty()) {
                    tenants.computeIfAbsent(quota.uuid(), u -> new TreeSet<>()).add(tenant);
                }
            }
        }
        Map<String, GpuLoad> loads = new HashMap<>();
        milli.forEach((uuid, m) ->
                loads.put(uuid, new GpuLoad(m, memory.getOrDefault(uuid, 0L), tenants.getOrDefault(uuid, Set.of()))));
        return loads;
    }

    /** What one allocation holds on one of its GPUs, as {@link #loads} counts it. */
    public record GpuShare(Allocation allocation, String gpuUuid, int milli, long memoryBytes) {}

    /**
     * Every allocation's share of every GPU it uses, leaving out {@code departed} ones and those on GPUs the
     * ledger no longer has: the entries {@link #loads} adds up, one per allocation per GPU.
     */
    public static List<GpuShare> shares(AllocationLedger ledger, Set<String> departed) {
        List<GpuShare> shares = new ArrayList<>();
        for (Allocation allocation : ledger.allocations()) {
            if (departed.contains(allocation.id())
                    || !allocation.gpuUuids().stream().allMatch(uuid -> ledger.gpu(uuid) != null)) {
                continue;
            }
            for (DeviceQuota quota : ledger.spec(allocation).devices()) {
                GpuDevice gpu = ledger.gpu(quota.uuid());
                long bytes = quota.memoryUnlimited()
                        ? MilliGpu.defaultMemory(quota.computeQuotaMilli(), gpu.memoryBytes())
                        : quota.memoryLimitBytes();
                shares.add(new GpuShare(allocation, quota.uuid(), quota.computeQuotaMilli(), bytes));
            }
        }
        return shares;
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
