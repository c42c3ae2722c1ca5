package io.omai.agent.deviceplugin;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.omai.agent.deviceplugin.podresources.v1.ContainerDevices;
import io.omai.agent.deviceplugin.podresources.v1.ContainerResources;
import io.omai.agent.deviceplugin.podresources.v1.ListPodResourcesRequest;
import io.omai.agent.deviceplugin.podresources.v1.PodResources;
import io.omai.agent.deviceplugin.podresources.v1.PodResourcesListerGrpc;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.HeldDevices;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.ReconcileReport;
import io.omai.agent.lifecycle.LoopThread;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Asks kubelet's PodResources List which containers hold which of our device IDs, and lets the ledger release
 * what nobody holds (kubelet has no Deallocate) and adopt what it did not know. Runs once at start and then
 * periodically; when kubelet cannot be asked, nothing is released.
 */
public final class PodResourcesReconciler implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PodResourcesReconciler.class);

    private final Path socket;
    private final String resourceName;
    private final AllocationLedger ledger;
    private final Duration interval;
    private final Duration releaseGracePeriod;
    private volatile boolean running;
    // when kubelet's PodResources stopped answering; null while it answers (one reconciling thread at a time)
    private volatile java.time.Instant unavailableSince;
    private volatile LoopThread loop; // null until started; start() sets it before it returns
    private final java.util.concurrent.atomic.AtomicLong passes = new java.util.concurrent.atomic.AtomicLong();

    public PodResourcesReconciler(
            Path socket, String resourceName, AllocationLedger ledger, Duration interval, Duration releaseGracePeriod) {
        this.socket = socket;
        this.resourceName = resourceName;
        this.ledger = ledger;
        this.interval = interval;
        this.releaseGracePeriod = releaseGracePeriod;
    }

    /** One reconciliation now. */
    public ReconcileReport reconcileOnce() throws LedgerException {
        return ledger.reconcileWith(this::held, releaseGracePeriod);
    }

    /** Every container holding our resource, as kubelet reports it. */
    List<HeldDevices> held() {
        ManagedChannel channel = UnixSocketGrpc.channel(socket);
        try {
            List<PodResources> pods = PodResourcesListerGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(5, TimeUnit.SECONDS)
                    .list(ListPodResourcesRequest.getDefaultInstance())
                    .getPodResourcesList();
            List<HeldDevices> held = new ArrayList<>();
            for (PodResources pod : pods) {
                for (ContainerResources container : pod.getContainersList()) {
                    List<String> ids = new ArrayList<>();
                    for (ContainerDevices devices : container.getDevicesList()) {
                        if (devices.getResourceName().equals(resourceName)) {
                            ids.addAll(devices.getDeviceIdsList());
                        }
                    }
                    if (!ids.isEmpty()) {
                        held.add(new HeldDevices(
                                pod.getNamespace() + "/" + pod.getName() + "/" + container.getName(), ids));
                    }
                }
            }
            return held;
        } finally {
            UnixSocketGrpc.close(channel);
        }
    }

    public synchronized void start() {
        running = true;
        loop = LoopThread.start("pod-resources-reconcile", Thread.ofVirtual().name("pod-resources-reconciler"), () -> {
            while (running) {
                tryReconcile();
                passes.incrementAndGet();
                try {
                    Thread.sleep(interval);
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
    }

    /** Completed passes of the periodic loop, for {@code /healthz}. */
    public long passes() {
        return passes.get();
    }

    /**
     * Reconciles, logging instead of throwing: for the periodic loop and start-up. kubelet being unreachable is
     * logged once when it becomes so (code and description; the status's cause would print a whole stack trace)
     * and once when it answers again, not at every round.
     */
    void tryReconcile() {
        try {
            ReconcileReport report = reconcileOnce();
            if (unavailableSince != null) {
                log.info(
                        "event=pod_resources_available socket={} unavailable_ms={}",
                        socket,
                        Duration.between(unavailableSince, java.time.Instant.now())
                                .toMillis());
                unavailableSince = null;
            }
            if (report.changedAnything()) {
                log.info(
                        "event=reconciled released={} adopted={} owners_learned={} orphans_removed={}",
                        report.released().size(),
                        report.adopted().size(),
                        report.ownersLearned().size(),
                        report.orphansRemoved().size());
            }
        } catch (StatusRuntimeException e) {
            if (unavailableSince == null) {
                unavailableSince = java.time.Instant.now();
                String description = e.getStatus().getDescription();
                log.warn(
                        "event=pod_resources_unavailable socket={} code={} description=\"{}\" detail=\"nothing "
                                + "released until kubelet answers; logged again only when it does\"",
                        socket,
                        e.getStatus().getCode(),
                        description == null ? "" : description.replace('"', '\''));
            }
        } catch (LedgerException e) {
            log.error("event=reconcile_failed error=\"{}\"", e.getMessage());
        }
    }

    @Override
    public void close() {
        running = false;
        LoopThread.closeIfStarted(loop);
    }
}
