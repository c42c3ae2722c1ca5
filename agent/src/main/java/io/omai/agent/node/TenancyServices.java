package io.omai.agent.node;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.grpc.StatusRuntimeException;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.deviceplugin.OtherPluginGpus;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuProcesses;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import io.omai.agent.kube.KubeEvents;
import io.omai.agent.kube.KubePodWatch;
import io.omai.agent.kube.NodeTenantsPublisher;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationClaim;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.lifecycle.AgentStartException;
import io.omai.agent.lifecycle.Closer;
import io.omai.agent.lifecycle.SupervisedLoop;
import io.omai.agent.quota.audit.AuditFinding;
import io.omai.agent.tenancy.AdmissionGate;
import io.omai.agent.tenancy.ClusterEvents;
import io.omai.agent.tenancy.GpuProcessAudit;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.NodePods;
import io.omai.agent.tenancy.Reservation;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.agent.tenancy.TenantIdentity;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The tenancy side of the running agent, wired: the admission gate the device plugin asks, the pod informer that
 * identifies pods (and releases a deleted pod's reservation), node events and the node's tenants annotation
 * (with the Kubernetes API), and the periodic cross-check with kubelet that withdraws GPUs another plugin hands
 * out whole.
 */
final class TenancyServices implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(TenancyServices.class);
    private static final long TENANTS_PERIOD_MILLIS = 1_000;

    private final GpuWithdrawals withdrawals;
    private final AdmissionGate gate;
    private final ClusterEvents events;
    private final Closer resources; // the client first, the loop last: stopped in reverse
    private final List<SupervisedLoop> supervised = new CopyOnWriteArrayList<>();
    private final OtherPluginGpus otherPlugin;
    private final GpuProcessAudit audit; // null with tenancy.audit: off
    private final List<Consumer<AuditFinding>> auditListeners = new CopyOnWriteArrayList<>();
    private KubernetesClient client; // null without the Kubernetes API; set once in start

    private TenancyServices(
            GpuWithdrawals withdrawals,
            AdmissionGate gate,
            ClusterEvents events,
            Closer resources,
            OtherPluginGpus otherPlugin,
            GpuProcessAudit audit) {
        this.withdrawals = withdrawals;
        this.gate = gate;
        this.events = events;
        this.resources = resources;
        this.otherPlugin = otherPlugin;
        this.audit = audit;
    }

    /**
     * The GPUs the configuration gives this agent ({@code tenancy.gpus}: UUIDs or NVML indices; empty: all).
     *
     * @throws AgentStartException naming a configured GPU this node does not have
     */
    static List<GpuDevice> partition(List<GpuDevice> discovered, List<String> configured) throws AgentStartException {
        if (configured.isEmpty()) {
            return discovered;
        }
        List<GpuDevice> ours = new ArrayList<>();
        for (String wanted : configured) {
            GpuDevice match = discovered.stream()
                    .filter(gpu -> gpu.uuid().equals(wanted)
                            || Integer.toString(gpu.index()).equals(wanted))
                    .findFirst()
                    .orElseThrow(() -> new AgentStartException(
                            "tenancy.gpus names " + wanted
                                    + ", which this node does not have; its GPUs are "
                                    + discovered.stream()
                                            .map(gpu -> gpu.index() + "=" + gpu.uuid())
                                            .toList(),
                            null));
            ours.add(match);
        }
        ours.sort((a, b) -> Integer.compare(a.index(), b.index()));
        for (GpuDevice gpu : discovered) {
            if (!ours.contains(gpu)) {
                log.info(
                        "event=gpu_not_shared gpu={} index={} detail=\"not in tenancy.gpus; left to other plugins\"",
                        gpu.uuid(),
                        gpu.index());
            }
        }
        return List.copyOf(ours);
    }

    static AntiAffinityPolicy policy(AgentConfig config) {
        return AntiAffinityPolicy.parse(config.tenancy().policy().name());
    }

    /** Whether the configuration asks for the Kubernetes API here ({@code auto}: when running in a cluster). */
    static boolean kubernetesApi(AgentConfig.Tenancy tenancy) {
        return switch (tenancy.kubernetesApi()) {
            case ON -> true;
            case OFF -> false;
            case AUTO -> System.getenv("KUBERNETES_SERVICE_HOST") != null;
        };
    }

    static TenancyServices start(
            AgentConfig config,
            List<GpuDevice> gpus,
            AllocationLedger ledger,
            ReservationBook book,
            GpuWithdrawals withdrawals,
            NvmlLibrary nvml) {
        return start(
                config,
                gpus,
                ledger,
                book,
                withdrawals,
                nvml,
                kubernetesApi(config.tenancy()) ? new KubernetesClientBuilder().build() : null);
    }

    /** With a given Kubernetes client (tests: the mock server's), or null for none. */
    static TenancyServices start(
            AgentConfig config,
            List<GpuDevice> gpus,
            AllocationLedger ledger,
            ReservationBook book,
            GpuWithdrawals withdrawals,
            NvmlLibrary nvml,
            KubernetesClient client) {
        AgentConfig.Tenancy settings = config.tenancy();
        Closer resources = new Closer("tenancy");
        if (client != null) {
            resources.add("kubernetes-client", client);
        }
        NodePods pods = NodePods.NONE;
        ClusterEvents events = ClusterEvents.NONE;
        if (client != null) {
            KubeEvents kubeEvents = new KubeEvents(client, config.nodeName(), Clock.systemUTC());
            resources.add("kube-events", kubeEvents);
            events = kubeEvents;
            KubePodWatch watch = new KubePodWatch(
                    config.nodeName(),
                    config.resources().milliGpu(),
                    new TenantIdentity(settings.tenantLabel()),
                    pod -> book.releaseByPod(pod.uid())
                            .ifPresent(released -> log.info(
                                    "event=reservation_released reason=pod_deleted "
                                            + "pod={} reservation={} tenant={}",
                                    pod.ref(),
                                    released.idempotencyKey(),
                                    released.tenant())));
            resources.add("pod-informer", watch.start(client));
            pods = watch;
            resources.add(
                    "tenants-publisher",
                    new NodeTenantsPublisher(client, config.nodeName(), () -> tenants(ledger, book))
                            .start(TENANTS_PERIOD_MILLIS));
        }
        AdmissionGate gate =
                new AdmissionGate(config.nodeName(), ledger, book, pods, withdrawals, settings.identifyWait());
        gate.reportTo(events);
        OtherPluginGpus otherPlugin =
                new OtherPluginGpus(config.directories().podResourcesSocket(), settings.otherGpuResource(), gpus);
        // the audit keeps its own window of NVML's GPU-time samples, apart from the compute controller's
        GpuProcessAudit audit = settings.audit() == AgentConfig.AuditAction.OFF
                ? null
                : new GpuProcessAudit(
                        ledger,
                        new GpuProcesses(nvml)::running,
                        io.omai.agent.quota.audit.ProcessIdentity.PROC,
                        new io.omai.agent.quota.compute.NvmlProcessGpuTime(nvml),
                        System::nanoTime,
                        settings.audit() == AgentConfig.AuditAction.KILL,
                        GpuProcessAudit.Killer.SIGKILL);
        if (audit != null) {
            // closed after its loop (the Closer goes in reverse): waits for a pass in progress, then unmaps
            resources.add("nvml-audit-mappings", audit);
        }
        TenancyServices services = new TenancyServices(withdrawals, gate, events, resources, otherPlugin, audit);
        services.client = client;
        Duration every = config.kubelet().reconcileInterval();
        if (pods.enabled()) {
            NodePods known = pods;
            services.supervise(SupervisedLoop.start(
                    "pod-claims", every, every, deadline(every), () -> learnClaims(ledger, known)));
        }
        services.supervise(SupervisedLoop.start(
                "coexistence-check", Duration.ZERO, every, deadline(every), services::checkOtherPlugin));
        if (audit != null) {
            Duration auditEvery = settings.auditInterval();
            services.supervise(SupervisedLoop.start(
                    "nvml-audit", auditEvery, auditEvery, deadline(auditEvery), services::auditOnce));
        }
        log.info(
                "event=tenancy_started node={} policy={} tenant_label={} kubernetes_api={} other_gpu_resource={}",
                config.nodeName(),
                book.policy().configName(),
                settings.tenantLabel(),
                client != null,
                settings.otherGpuResource());
        return services;
    }

    /** Far beyond one pass (a PodResources call, an NVML query per GPU): past it, {@code /healthz} fails. */
    private static Duration deadline(Duration period) {
        return period.multipliedBy(10).plus(Duration.ofSeconds(60));
    }

    private void supervise(SupervisedLoop loop) {
        supervised.add(loop);
        resources.add(loop.name(), loop);
    }

    /** The periodic loops (pod claims, coexistence check, NVML audit), for {@code /healthz}. */
    List<SupervisedLoop> loops() {
        return List.copyOf(supervised);
    }

    /**
     * Allocations whose pod was not known when they were recorded (adopted from PodResources after a restart)
     * learn their pod and tenant once PodResources has named the container and the informer shows the pod.
     */
    static void learnClaims(AllocationLedger ledger, NodePods pods) {
        try {
            for (Allocation allocation : ledger.allocations()) {
                String[] owner = allocation.owner().split("/", 3);
                if (!allocation.claim().equals(AllocationClaim.UNKNOWN) || owner.length != 3) {
                    continue;
                }
                pods.byName(owner[0], owner[1])
                        .ifPresent(pod -> ledger.learnClaim(
                                allocation.id(),
                                new AllocationClaim(
                                        pod.uid(), pod.namespace(), pod.name(), owner[2], pod.tenant(), 0)));
            }
        } catch (RuntimeException e) {
            log.warn("event=claims_not_learned", e);
        }
    }

    /** Tenants with allocations (known ones) or reservations on the node. */
    static Set<String> tenants(AllocationLedger ledger, ReservationBook book) {
        Set<String> tenants = new TreeSet<>();
        for (Allocation allocation : ledger.allocations()) {
            if (allocation.claim().tenantKnown()) {
                tenants.add(allocation.tenant());
            }
        }
        for (Reservation reservation : book.outstanding()) {
            tenants.add(reservation.tenant());
        }
        return tenants;
    }

    /** One cross-check with kubelet: withdraws GPUs another plugin hands out whole, restores those it no longer does. */
    void checkOtherPlugin() {
        Map<String, String> overlaps;
        try {
            overlaps = otherPlugin.overlaps();
        } catch (StatusRuntimeException e) {
            log.debug("event=coexistence_check_skipped status={} detail=\"PodResources unavailable\"", e.getStatus());
            return;
        } catch (RuntimeException e) {
            log.warn("event=coexistence_check_failed", e);
            return;
        }
        Map<String, String> before = withdrawals.current();
        withdrawals.replace(overlaps);
        overlaps.forEach((uuid, reason) -> {
            if (!before.containsKey(uuid)) {
                events.onNode(
                        "GpuWithdrawn",
                        "GPU " + uuid + " is withdrawn from omai.io/milli-gpu: " + reason
                                + "; two plugins must never hand out one GPU (configure tenancy.gpus or the other plugin)");
            }
        });
    }

    /** One audit pass: findings become events (on the pod, else the node) and go to the listeners (metrics). */
    void auditOnce() {
        try {
            for (AuditFinding finding : audit.auditOnce()) {
                report(finding);
            }
        } catch (RuntimeException | InternalError e) {
            // a failed pass must not cancel the schedule (InternalError: a fault in a truncated mapping)
            log.warn("event=audit_failed", e);
        }
    }

    /**
     * Makes a finding known: a Kubernetes event on its pod (else on the node) and every listener (the metrics).
     * The NVML audit and the usage-file checks both report through here.
     */
    void report(AuditFinding finding) {
        String reason = switch (finding.reason()) {
            case NO_SHIM -> "GpuProcessWithoutShim";
            case MEMORY_OVER_QUOTA, CONTAINER_MEMORY_OVER_QUOTA, COMPUTE_OVER_QUOTA -> "GpuProcessOverQuota";
            case USAGE_TAMPERED -> "GpuUsageFileTampered";
            case SLOTS_EXHAUSTED -> "GpuUsageSlotsExhausted";
        };
        if (finding.namespace().isEmpty()) {
            events.onNode(reason, finding.describe());
        } else {
            events.onPod(finding.namespace(), finding.pod(), finding.podUid(), reason, finding.describe());
        }
        for (Consumer<AuditFinding> listener : auditListeners) {
            listener.accept(finding);
        }
    }

    /** {@code listener} hears of every audit finding (the metrics count them). */
    void onAuditFinding(Consumer<AuditFinding> listener) {
        auditListeners.add(listener);
    }

    AdmissionGate gate() {
        return gate;
    }

    GpuWithdrawals withdrawals() {
        return withdrawals;
    }

    ClusterEvents events() {
        return events;
    }

    /** The Kubernetes client (closed with these services), or null without the Kubernetes API. */
    KubernetesClient client() {
        return client;
    }

    @Override
    public void close() {
        resources.close();
    }
}
