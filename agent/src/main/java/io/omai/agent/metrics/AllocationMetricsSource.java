package io.omai.agent.metrics;

import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Objects;

/**
 * The allocations {@link AllocationMetrics} reports, asked once per scrape. The numbers themselves come from
 * each allocation's control and usage files (what the shim enforces and reports), so a source only says which
 * allocations exist, whose they are and where their files are. The daemon answers it from the ledger
 * ({@link NodeAgentSources}).
 */
@FunctionalInterface
public interface AllocationMetricsSource {
    /** Every live allocation now. An allocation absent from the answer loses its series. */
    List<TrackedAllocation> allocations();

    /**
     * One container's allocation.
     *
     * @param id the ledger's allocation id ({@code a-<hash>})
     * @param createdAt when it was made: with the id, tells a re-made allocation (new files) from the old one
     * @param namespace its pod's namespace, "" while unknown
     * @param pod its pod's name, "" while unknown
     * @param container its container's name, "" while unknown
     * @param tenant the pod's tenant, "" while unknown
     * @param directory the directory holding its {@code control} and {@code usage} files
     */
    record TrackedAllocation(
            String id,
            Instant createdAt,
            String namespace,
            String pod,
            String container,
            String tenant,
            Path directory) {
        public TrackedAllocation {
            if (id == null || id.isBlank()) {
                throw new IllegalArgumentException("allocation id is empty");
            }
            Objects.requireNonNull(createdAt, "createdAt of " + id);
            Objects.requireNonNull(directory, "directory of " + id);
            namespace = Objects.requireNonNullElse(namespace, "");
            pod = Objects.requireNonNullElse(pod, "");
            container = Objects.requireNonNullElse(container, "");
            tenant = Objects.requireNonNullElse(tenant, "");
        }

        /** True once the ledger knows which container holds it. */
        public boolean ownerKnown() {
            return !pod.isEmpty();
        }
    }
}
