package io.omai.agent.tenancy;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/** A hand-built node for reservation tests: GPUs with given allocations and a few VFs. */
record FakeNodeCapacity(String nodeName, List<Gpu> gpus, Set<String> vfIds, Set<String> freeVfIds)
        implements NodeCapacity {
    static final long GIB = 1L << 30;

    record Gpu(
            String uuid,
            int milliCapacity,
            int milliAllocated,
            long memoryBytes,
            long memoryAllocatedBytes,
            boolean healthy,
            Set<String> tenants)
            implements GpuCapacity {
        static Gpu idle(String uuid) {
            return new Gpu(uuid, 1000, 0, 80 * GIB, 0, true, Set.of());
        }

        Gpu allocated(String tenant, int milli, long memory) {
            return new Gpu(
                    uuid,
                    milliCapacity,
                    milliAllocated + milli,
                    memoryBytes,
                    memoryAllocatedBytes + memory,
                    healthy,
                    Set.of(tenant));
        }

        Gpu unhealthy() {
            return new Gpu(uuid, milliCapacity, milliAllocated, memoryBytes, memoryAllocatedBytes, false, tenants);
        }
    }

    static FakeNodeCapacity idleGpus(int count) {
        var gpus = new ArrayList<Gpu>();
        for (int i = 0; i < count; i++) {
            gpus.add(Gpu.idle("GPU-" + i));
        }
        var vfs = new LinkedHashSet<>(List.of("0000:3b:00.2", "0000:3b:00.3"));
        return new FakeNodeCapacity("node-a", gpus, vfs, vfs);
    }

    FakeNodeCapacity with(Gpu replacement) {
        return new FakeNodeCapacity(
                nodeName,
                gpus.stream()
                        .map(gpu -> gpu.uuid().equals(replacement.uuid()) ? replacement : gpu)
                        .toList(),
                vfIds,
                freeVfIds);
    }

    Gpu gpu(String uuid) {
        return gpus.stream().filter(gpu -> gpu.uuid().equals(uuid)).findFirst().orElseThrow();
    }
}
