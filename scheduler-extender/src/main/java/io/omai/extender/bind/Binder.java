package io.omai.extender.bind;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.api.model.EventBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.http.HttpResponse;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.ReleaseRequest;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.extender.cache.NodeLink;
import io.omai.extender.cache.NodeStateCache;
import io.omai.extender.config.AgentConnection;
import io.omai.extender.decide.Decider;
import io.omai.extender.decide.InvalidPodException;
import io.omai.extender.decide.PodDemand;
import io.omai.extender.decide.Verdict;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Binds a pod the way no annotation-based extender can race: first {@code Reserve} on the chosen node's agent
 * (idempotency key = the pod's UID, under a lease), then the pod's Binding through the API server. The agent is
 * the arbiter: of two replicas (or schedulers) binding onto the last share, one Reserve fails and that bind
 * returns an error, so kube-scheduler retries the pod. A Binding that fails releases the reservation at once.
 */
public final class Binder {
    private static final Logger log = LoggerFactory.getLogger(Binder.class);
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final KubernetesClient client;
    private final NodeStateCache cache;
    private final Decider decider;
    private final PodReader reader;
    private final BearerToken token;
    private final AgentConnection agents;

    /** Reads a pod's demand (tenant label, selector cache): the same reading filter uses. */
    @FunctionalInterface
    public interface PodReader {
        PodDemand read(Pod pod) throws InvalidPodException;
    }

    public Binder(
            KubernetesClient client,
            NodeStateCache cache,
            Decider decider,
            PodReader reader,
            BearerToken token,
            AgentConnection agents) {
        this.client = client;
        this.cache = cache;
        this.decider = decider;
        this.reader = reader;
        this.token = token;
        this.agents = agents;
    }

    /** Binds; empty on success, else the error for kube-scheduler's ExtenderBindingResult. */
    public Optional<String> bind(String namespace, String name, String uid, String node) {
        String pod = namespace + "/" + name;
        Pod current;
        try {
            current = client.pods().inNamespace(namespace).withName(name).get();
        } catch (KubernetesClientException e) {
            return Optional.of("reading pod " + pod + " failed: " + e.getMessage());
        }
        if (current == null) {
            return Optional.of("pod " + pod + " does not exist (deleted before binding)");
        }
        if (!uid.isEmpty() && !uid.equals(current.getMetadata().getUid())) {
            return Optional.of("pod " + pod + " has UID "
                    + current.getMetadata().getUid() + ", not " + uid + " (deleted and recreated before binding)");
        }
        String boundTo = current.getSpec().getNodeName();
        if (boundTo != null && !boundTo.isEmpty()) {
            // a retry of a bind that succeeded: nothing to do; bound elsewhere: refuse
            return boundTo.equals(node)
                    ? Optional.empty()
                    : Optional.of("pod " + pod + " is already bound to node " + boundTo);
        }
        PodDemand demand;
        try {
            demand = reader.read(current);
        } catch (InvalidPodException e) {
            return Optional.of(e.getMessage());
        }
        String podUid = current.getMetadata().getUid();
        Optional<NodeLink> link = Optional.empty();
        if (demand.wantsDevices()) {
            link = cache.link(node);
            if (link.isEmpty()) {
                return Optional.of("no OMAI node agent is known on node " + node + "; cannot reserve for pod " + pod);
            }
            Optional<String> refused = reserve(link.get(), demand, podUid, pod, node);
            if (refused.isPresent()) {
                return refused;
            }
        }
        Optional<String> bindingError = createBinding(namespace, name, podUid, node);
        if (bindingError.isPresent() && link.isPresent()) {
            release(link.get(), podUid, pod, node, bindingError.get());
            recordEvent(
                    namespace,
                    name,
                    podUid,
                    "OMAIBindingFailed",
                    bindingError.get() + "; the devices reserved on " + node + " were released");
        }
        if (bindingError.isEmpty()) {
            log.info("event=pod_bound pod={} uid={} node={} reserved={}", pod, podUid, node, demand.wantsDevices());
        }
        return bindingError;
    }

    private Optional<String> reserve(NodeLink link, PodDemand demand, String podUid, String pod, String node) {
        // a retry after a lost Binding: reserve exactly what is held, so the agent answers idempotently
        List<ContainerAssignment> assignments = link.latest()
                .flatMap(cached -> cached.state().getReservationsList().stream()
                        .filter(r -> r.getPodUid().equals(podUid))
                        .findFirst())
                .map(r -> r.getContainersList())
                .orElse(null);
        if (assignments == null) {
            Verdict verdict = decider.place(demand, node);
            if (verdict instanceof Verdict.Fails fails) {
                return Optional.of("pod " + pod + " no longer fits node " + node + ": " + fails.reason());
            }
            assignments = ((Verdict.Fits) verdict).assignments();
        }
        var request = ReserveRequest.newBuilder()
                .setIdempotencyKey(podUid)
                .setPodUid(podUid)
                .setTenant(demand.tenant())
                .addAllContainers(assignments)
                .setLeaseSeconds(agents.leaseSeconds())
                .build();
        try {
            var reservation = authorized(link.blocking()).reserve(request).getReservation();
            log.info(
                    "event=devices_reserved pod={} uid={} node={} containers={} expires={}",
                    pod,
                    podUid,
                    node,
                    reservation.getContainersCount(),
                    reservation.getExpiresAt().getSeconds());
            return Optional.empty();
        } catch (StatusRuntimeException e) {
            log.info(
                    "event=reserve_refused pod={} uid={} node={} status={}",
                    pod,
                    podUid,
                    node,
                    e.getStatus().getCode());
            recordEvent(
                    demand.namespace(),
                    demand.name(),
                    podUid,
                    "OMAIReserveRefused",
                    "node " + node + " agent refused to reserve devices: " + e.getStatus()
                            + "; kube-scheduler retries the pod");
            return Optional.of("node " + node + " agent refused the reservation for pod " + pod
                    + " (another scheduler may have taken the devices; kube-scheduler will retry): " + e.getStatus());
        } catch (RuntimeException e) {
            return Optional.of("reserving on node " + node + " for pod " + pod + " failed: " + e.getMessage());
        }
    }

    /**
     * A Warning event on the pod, so `kubectl describe pod` says what the agent or the API server answered. Sent
     * off the bind path (kube-scheduler waits on bind) and best-effort: a lost event is logged, never retried.
     */
    private void recordEvent(String namespace, String name, String uid, String reason, String message) {
        Thread.ofVirtual().name("omai-extender-event").start(() -> {
            try {
                var now = java.time.Instant.now().toString();
                client.v1()
                        .events()
                        .inNamespace(namespace)
                        .resource(new EventBuilder()
                                .withNewMetadata()
                                .withName(name + "." + Long.toHexString(System.nanoTime()))
                                .withNamespace(namespace)
                                .endMetadata()
                                .withNewInvolvedObject()
                                .withApiVersion("v1")
                                .withKind("Pod")
                                .withNamespace(namespace)
                                .withName(name)
                                .withUid(uid)
                                .endInvolvedObject()
                                .withType("Warning")
                                .withReason(reason)
                                .withMessage(message)
                                .withNewSource()
                                .withComponent("omai-scheduler-extender")
                                .endSource()
                                .withReportingComponent("omai-scheduler-extender")
                                .withFirstTimestamp(now)
                                .withLastTimestamp(now)
                                .withCount(1)
                                .build())
                        .create();
            } catch (RuntimeException e) {
                log.warn(
                        "event=pod_event_failed pod={}/{} reason={} error=\"{}\"",
                        namespace,
                        name,
                        reason,
                        e.getMessage());
            }
        });
    }

    private void release(NodeLink link, String podUid, String pod, String node, String why) {
        try {
            authorized(link.blocking())
                    .release(ReleaseRequest.newBuilder().setPodUid(podUid).build());
            log.info("event=reservation_released pod={} uid={} node={} reason=\"{}\"", pod, podUid, node, why);
        } catch (RuntimeException e) {
            // the lease ends it anyway; say so rather than hide it
            log.warn(
                    "event=release_failed pod={} uid={} node={} error=\"{}\" lease_s={}",
                    pod,
                    podUid,
                    node,
                    e.getMessage(),
                    agents.leaseSeconds());
        }
    }

    private NodeAgentGrpc.NodeAgentBlockingStub authorized(NodeAgentGrpc.NodeAgentBlockingStub stub) {
        var withDeadline = stub.withDeadlineAfter(agents.reserveDeadline().toMillis(), TimeUnit.MILLISECONDS);
        Optional<String> bearer = token.current();
        if (bearer.isEmpty()) {
            return withDeadline;
        }
        var headers = new Metadata();
        headers.put(AUTHORIZATION, "Bearer " + bearer.get());
        return withDeadline.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
    }

    /** POST pods/{name}/binding, as kube-scheduler's default binder does (RBAC: pods/binding create). */
    private Optional<String> createBinding(String namespace, String name, String uid, String node) {
        Map<String, Object> metadata = new LinkedHashMap<>();
        metadata.put("name", name);
        metadata.put("namespace", namespace);
        metadata.put("uid", uid);
        Map<String, Object> binding = new LinkedHashMap<>();
        binding.put("apiVersion", "v1");
        binding.put("kind", "Binding");
        binding.put("metadata", metadata);
        binding.put("target", Map.of("apiVersion", "v1", "kind", "Node", "name", node));
        String master = client.getMasterUrl().toString();
        String url = (master.endsWith("/") ? master : master + "/") + "api/v1/namespaces/" + namespace + "/pods/" + name
                + "/binding";
        try {
            var http = client.getHttpClient();
            var request = http.newHttpRequestBuilder()
                    .uri(url)
                    .post("application/json", JSON.writeValueAsString(binding))
                    .build();
            HttpResponse<String> response = http.sendAsync(request, String.class)
                    .get(agents.reserveDeadline().toMillis(), TimeUnit.MILLISECONDS);
            if (response.isSuccessful()) {
                return Optional.empty();
            }
            return Optional.of("binding pod " + namespace + "/" + name + " to node " + node + " failed: HTTP "
                    + response.code() + " " + response.body());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.of("binding pod " + namespace + "/" + name + " interrupted");
        } catch (ExecutionException | TimeoutException | java.io.IOException e) {
            return Optional.of("binding pod " + namespace + "/" + name + " to node " + node + " failed: " + e);
        }
    }
}
