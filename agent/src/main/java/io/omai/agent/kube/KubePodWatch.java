package io.omai.agent.kube;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.informers.ResourceEventHandler;
import io.fabric8.kubernetes.client.informers.SharedIndexInformer;
import io.omai.agent.tenancy.NodePods;
import io.omai.agent.tenancy.PodInfo;
import io.omai.agent.tenancy.TenantIdentity;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The pods bound to this node, kept current by a fabric8 informer (list, then watch, with resyncs), as
 * {@link PodInfo}s: tenant from the configured label or the namespace, phase, creation time and the containers
 * requesting the milli-GPU resource. The informer asks the API server for this node's pods only (field selector
 * {@code spec.nodeName}); pods of other nodes are dropped here as well. A pod that goes away is reported to the
 * deletion listener (which releases its reservation).
 */
public final class KubePodWatch implements NodePods, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KubePodWatch.class);
    private static final long RESYNC_MILLIS = 60_000;

    private final String nodeName;
    private final String resourceName;
    private final TenantIdentity identity;
    private final Consumer<PodInfo> onDeleted;
    private final Map<String, PodInfo> byUid = new ConcurrentHashMap<>();
    // set under the monitor by start/close; volatile: synced() reads it without the lock
    private volatile SharedIndexInformer<Pod> informer;

    public KubePodWatch(String nodeName, String resourceName, TenantIdentity identity, Consumer<PodInfo> onDeleted) {
        this.nodeName = Objects.requireNonNull(nodeName, "nodeName");
        this.resourceName = Objects.requireNonNull(resourceName, "resourceName");
        this.identity = Objects.requireNonNull(identity, "identity");
        this.onDeleted = Objects.requireNonNull(onDeleted, "onDeleted");
    }

    /** Starts the informer on this node's pods; returns at once (the first list arrives asynchronously). */
    public KubePodWatch start(KubernetesClient client) {
        return start(client, true);
    }

    /**
     * As {@link #start(KubernetesClient)}; {@code serverSideNodeFilter} false lists every pod and keeps this
     * node's here, for API servers without field selectors on pods (fabric8's mock server in CRUD mode).
     */
    public synchronized KubePodWatch start(KubernetesClient client, boolean serverSideNodeFilter) {
        var pods = client.pods().inAnyNamespace();
        informer = (serverSideNodeFilter ? pods.withField("spec.nodeName", nodeName) : pods)
                .inform(new Handler(), RESYNC_MILLIS);
        log.info(
                "event=pod_watch_started node={} tenant_label={} resource={}",
                nodeName,
                identity.label(),
                resourceName);
        return this;
    }

    @Override
    public boolean enabled() {
        return true;
    }

    /** Whether the informer has listed the node's pods at least once. */
    public boolean synced() {
        SharedIndexInformer<Pod> current = informer;
        return current != null && current.hasSynced();
    }

    @Override
    public Collection<PodInfo> pods() {
        return List.copyOf(byUid.values());
    }

    @Override
    public Optional<PodInfo> byUid(String uid) {
        return Optional.ofNullable(byUid.get(uid));
    }

    /** Converts an API pod; public for tests of the conversion. */
    public PodInfo toPodInfo(Pod pod) {
        var meta = pod.getMetadata();
        String namespace = Objects.requireNonNullElse(meta.getNamespace(), "default");
        String phase = pod.getStatus() == null ? null : pod.getStatus().getPhase();
        List<PodInfo.GpuContainer> gpu = new ArrayList<>();
        if (pod.getSpec() != null) {
            addGpuContainers(pod.getSpec().getInitContainers(), gpu);
            addGpuContainers(pod.getSpec().getContainers(), gpu);
        }
        return new PodInfo(
                meta.getUid(),
                namespace,
                meta.getName(),
                identity.tenantOf(meta.getLabels(), namespace),
                phase == null || phase.isEmpty() || phase.equals("Pending"),
                createdAt(meta.getCreationTimestamp()),
                gpu,
                "Running".equals(phase) || "Succeeded".equals(phase));
    }

    private void addGpuContainers(List<Container> containers, List<PodInfo.GpuContainer> into) {
        if (containers == null) {
            return;
        }
        for (Container container : containers) {
            if (container.getResources() == null) {
                continue;
            }
            // extended resources: requests == limits, and a limit alone implies the request
            Quantity quantity = Optional.ofNullable(container.getResources().getLimits())
                    .map(l -> l.get(resourceName))
                    .or(() -> Optional.ofNullable(container.getResources().getRequests())
                            .map(r -> r.get(resourceName)))
                    .orElse(null);
            if (quantity != null) {
                int milli = Quantity.getAmountInBytes(quantity).intValueExact();
                if (milli > 0) {
                    into.add(new PodInfo.GpuContainer(container.getName(), milli));
                }
            }
        }
    }

    private static Instant createdAt(String timestamp) {
        if (timestamp == null) {
            return Instant.EPOCH;
        }
        try {
            return Instant.parse(timestamp);
        } catch (DateTimeParseException e) {
            return Instant.EPOCH;
        }
    }

    private boolean onThisNode(Pod pod) {
        return pod.getSpec() != null && nodeName.equals(pod.getSpec().getNodeName());
    }

    private void upsert(Pod pod) {
        if (pod.getMetadata() == null || pod.getMetadata().getUid() == null) {
            return;
        }
        if (!onThisNode(pod)) {
            byUid.remove(pod.getMetadata().getUid());
            return;
        }
        try {
            PodInfo info = toPodInfo(pod);
            PodInfo before = byUid.put(info.uid(), info);
            if (before == null) {
                log.debug(
                        "event=pod_seen pod={} uid={} tenant={} pending={} gpu_containers={}",
                        info.ref(),
                        info.uid(),
                        info.tenant(),
                        info.pending(),
                        info.gpuContainers());
            }
        } catch (ArithmeticException | IllegalArgumentException e) {
            log.warn(
                    "event=pod_unreadable pod={}/{} reason=\"{}\"",
                    pod.getMetadata().getNamespace(),
                    pod.getMetadata().getName(),
                    e.getMessage());
        }
    }

    private void delete(Pod pod) {
        if (pod.getMetadata() == null || pod.getMetadata().getUid() == null) {
            return;
        }
        PodInfo removed = byUid.remove(pod.getMetadata().getUid());
        if (removed != null) {
            log.info("event=pod_gone pod={} uid={} tenant={}", removed.ref(), removed.uid(), removed.tenant());
            try {
                onDeleted.accept(removed);
            } catch (RuntimeException e) {
                log.warn("event=pod_gone_listener_failed pod={}", removed.ref(), e);
            }
        }
    }

    @Override
    public synchronized void close() {
        if (informer != null) {
            informer.close();
            informer = null;
        }
    }

    private final class Handler implements ResourceEventHandler<Pod> {
        @Override
        public void onAdd(Pod pod) {
            upsert(pod);
        }

        @Override
        public void onUpdate(Pod oldPod, Pod newPod) {
            upsert(newPod);
        }

        @Override
        public void onDelete(Pod pod, boolean deletedFinalStateUnknown) {
            delete(pod);
        }
    }
}
