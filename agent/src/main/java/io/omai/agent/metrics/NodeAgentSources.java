package io.omai.agent.metrics;

import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.metrics.AllocationMetricsSource.TrackedAllocation;
import io.omai.agent.metrics.GpuMetricsSource.GpuReading;
import io.omai.agent.node.NodeAgent;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.placement.MilliGpu;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * The daemon's sources: GPUs and allocations from the {@link AllocationLedger} (the one owner of allocation
 * state), health from the GPU health monitor, live memory and utilisation from NVML, registrations from the
 * kubelet registrar; and readiness from the plugin's registration and socket.
 */
public final class NodeAgentSources {
    private NodeAgentSources() {}

    /**
     * Binds a started agent's GPU, allocation and kubelet series and its readiness checks.
     *
     * @param nvml the NVML binding the agent uses (the daemon's: {@code FfmNvmlLibrary.instance()})
     * @param tenants the tenant of each pod, {@link TenantLookup#UNKNOWN} where the agent knows none
     */
    public static void bind(AgentMetrics metrics, NodeAgent agent, NvmlLibrary nvml, TenantLookup tenants) {
        NvmlGpuReadings readings = new NvmlGpuReadings(nvml);
        metrics.closeWith(readings);
        bind(metrics, agent, readings, tenants);
    }

    static void bind(AgentMetrics metrics, NodeAgent agent, NvmlGpuReadings nvml, TenantLookup tenants) {
        AllocationLedger ledger = agent.ledger();
        // omai_gpu_healthy follows what kubelet is told: a GPU withdrawn for another plugin reads 0
        metrics.bindGpus(gpus(ledger, agent::advertisedHealth, agent.health()::xidCounts, nvml));
        metrics.bindJvm();
        metrics.bindLoops(agent.loops()::lastPassAges);
        metrics.bindReaper(agent::slotsReclaimed, agent::bytesReclaimed);
        metrics.bindAllocations(allocations(ledger, tenants));
        metrics.bindKubelet(new KubeletMetricsSource() {
            @Override
            public long registrations() {
                return agent.registrations();
            }

            @Override
            public long kubeletRestarts() {
                return agent.kubeletRestarts();
            }
        });
        agent.vfInventory()
                .ifPresent(first -> metrics.bindVfs(new VfMetricsSource() {
                    @Override
                    public io.omai.ibvf.inventory.InventorySnapshot inventory() {
                        return agent.vfInventory().orElse(first);
                    }

                    @Override
                    public java.util.Set<io.omai.ibvf.model.PciAddress> allocatedVfs() {
                        return agent.allocatedVfs();
                    }
                }));
        // A pass waits up to 1 s, a Register call up to 5 s and a failure up to the back-off: far beyond that,
        // the loop that keeps the plugin registered is stuck and a restart is the way out.
        Duration maxStall = Duration.ofSeconds(30)
                .plus(agent.config().kubelet().registrationBackoffMax().multipliedBy(2));
        metrics.health()
                .addLiveness(
                        "kubelet-registration",
                        HealthChecks.progress(agent::registrationLoopPasses, maxStall, System::nanoTime));
        // The NVML audit's findings: omai_audit_findings_total{finding, namespace, pod, node}
        agent.onAuditFinding(finding -> metrics.audit()
                .recordViolation(
                        switch (finding.reason()) {
                            case NO_SHIM -> AuditMetrics.Reason.NO_SHIM;
                            case MEMORY_OVER_QUOTA, CONTAINER_MEMORY_OVER_QUOTA ->
                                AuditMetrics.Reason.MEMORY_OVER_QUOTA;
                            case COMPUTE_OVER_QUOTA -> AuditMetrics.Reason.COMPUTE_OVER_QUOTA;
                            case USAGE_TAMPERED -> AuditMetrics.Reason.USAGE_TAMPERED;
                            case SLOTS_EXHAUSTED -> AuditMetrics.Reason.SLOTS_EXHAUSTED;
                        },
                        finding.namespace(),
                        finding.pod()));
        // The compute controller ticks every period; ten seconds without a tick means grants stopped growing.
        agent.computeLoop().onTick(metrics.controllerTickRecorder());
        metrics.health()
                .addLiveness(
                        "compute-control",
                        HealthChecks.progress(agent.computeLoop()::ticks, Duration.ofSeconds(10), System::nanoTime));
        // every background loop (reaper, compute control, GPU health, registration, reconcile): a loop that
        // missed its deadline or stopped fails liveness, so kubelet restarts the agent
        metrics.health().addLiveness("loops", agent.loops()::problem);
        metrics.health()
                .addReadiness(
                        "kubelet",
                        () -> agent.registrations() > 0
                                ? Optional.empty()
                                : Optional.of("not registered with kubelet yet (kubelet.sock in "
                                        + agent.config().directories().devicePlugin() + ")"));
        metrics.health()
                .addReadiness(
                        "plugin-socket",
                        () -> Files.exists(agent.pluginSocket())
                                ? Optional.empty()
                                : Optional.of("plugin socket " + agent.pluginSocket()
                                        + " is missing (kubelet restarted; rebinding)"));
    }

    /** Every GPU of the ledger, with what its allocations hold on it. */
    static GpuMetricsSource gpus(
            AllocationLedger ledger,
            Supplier<Map<String, GpuHealth>> health,
            Supplier<Map<String, Map<Long, Long>>> xids,
            NvmlGpuReadings nvml) {
        return () -> {
            Map<String, Integer> milli = new HashMap<>();
            Map<String, Long> memory = new HashMap<>();
            for (Allocation allocation : ledger.allocations()) {
                allocation.milliPerGpu().forEach((uuid, share) -> milli.merge(uuid, share, Integer::sum));
                if (allocation.gpuUuids().stream().allMatch(uuid -> ledger.gpu(uuid) != null)) {
                    for (DeviceQuota quota : ledger.spec(allocation).devices()) {
                        if (!quota.memoryUnlimited()) {
                            memory.merge(quota.uuid(), quota.memoryLimitBytes(), Long::sum);
                        }
                    }
                }
            }
            Map<String, GpuHealth> healthNow = health.get();
            Map<String, Map<Long, Long>> xidsNow = xids.get();
            List<GpuDevice> gpus = ledger.gpus();
            Map<String, Map<GpuTelemetry, Double>> telemetry = nvml.readAll(gpus); // one NVML round per scrape
            List<GpuReading> readings = new ArrayList<>();
            for (GpuDevice gpu : gpus) {
                GpuHealth gpuHealth = healthNow.get(gpu.uuid());
                readings.add(new GpuReading(
                        gpu.index(),
                        gpu.uuid(),
                        gpu.name(),
                        gpu.memoryBytes(),
                        memory.getOrDefault(gpu.uuid(), 0L),
                        milli.getOrDefault(gpu.uuid(), 0),
                        MilliGpu.PER_GPU,
                        gpuHealth != null && gpuHealth.healthy(),
                        telemetry.getOrDefault(gpu.uuid(), Map.of()),
                        xidsNow.getOrDefault(gpu.uuid(), Map.of())));
            }
            return readings;
        };
    }

    /** Every allocation of the ledger, its owner ({@code namespace/pod/container}) split into labels. */
    static AllocationMetricsSource allocations(AllocationLedger ledger, TenantLookup tenants) {
        return () -> {
            List<TrackedAllocation> tracked = new ArrayList<>();
            for (Allocation allocation : ledger.allocations()) {
                String[] owner = allocation.owner().split("/", 3);
                boolean known = owner.length == 3;
                String namespace = known ? owner[0] : "";
                String pod = known ? owner[1] : "";
                tracked.add(new TrackedAllocation(
                        allocation.id(),
                        allocation.createdAt(),
                        namespace,
                        pod,
                        known ? owner[2] : "",
                        allocation.claim().tenantKnown()
                                ? allocation.tenant()
                                : known ? tenants.tenantOf(namespace, pod) : "",
                        ledger.directory(allocation)));
            }
            return tracked;
        };
    }
}
