package io.omai.agent.kube;

import io.fabric8.kubernetes.api.model.Event;
import io.fabric8.kubernetes.api.model.EventBuilder;
import io.fabric8.kubernetes.api.model.ObjectReference;
import io.fabric8.kubernetes.api.model.ObjectReferenceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.omai.agent.tenancy.ClusterEvents;
import java.time.Clock;
import java.util.HexFormat;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Warning events (core/v1 {@code Event}) about this node or a pod, created on one background thread so that
 * the decision they report never waits for the API server. Node events go to the {@code default} namespace,
 * as kubelet's do. A failure to create one is logged, never thrown.
 */
public final class KubeEvents implements ClusterEvents, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KubeEvents.class);
    static final String COMPONENT = "omai-agent";

    private final KubernetesClient client;
    private final String nodeName;
    private final Clock clock;
    private final ExecutorService sender = Executors.newSingleThreadExecutor(
            Thread.ofPlatform().name("omai-k8s-events").daemon().factory());

    public KubeEvents(KubernetesClient client, String nodeName, Clock clock) {
        this.client = Objects.requireNonNull(client, "client");
        this.nodeName = Objects.requireNonNull(nodeName, "nodeName");
        this.clock = Objects.requireNonNull(clock, "clock");
    }

    @Override
    public void onNode(String reason, String message) {
        ObjectReference node = new ObjectReferenceBuilder()
                .withApiVersion("v1")
                .withKind("Node")
                .withName(nodeName)
                .withUid(nodeName)
                .build();
        send("default", node, reason, message);
    }

    @Override
    public void onPod(String namespace, String pod, String podUid, String reason, String message) {
        ObjectReference ref = new ObjectReferenceBuilder()
                .withApiVersion("v1")
                .withKind("Pod")
                .withNamespace(namespace)
                .withName(pod)
                .withUid(podUid)
                .build();
        send(namespace, ref, reason, message);
    }

    private void send(String namespace, ObjectReference about, String reason, String message) {
        String now = clock.instant().toString();
        Event event = new EventBuilder()
                .withNewMetadata()
                .withNamespace(namespace)
                .withName(about.getName() + "."
                        + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong()))
                .endMetadata()
                .withInvolvedObject(about)
                .withType("Warning")
                .withReason(reason)
                .withMessage(message)
                .withNewSource()
                .withComponent(COMPONENT)
                .withHost(nodeName)
                .endSource()
                .withReportingComponent(COMPONENT)
                .withReportingInstance(nodeName)
                .withFirstTimestamp(now)
                .withLastTimestamp(now)
                .withCount(1)
                .build();
        try {
            sender.execute(() -> {
                try {
                    client.v1().events().inNamespace(namespace).resource(event).create();
                } catch (KubernetesClientException e) {
                    log.warn(
                            "event=k8s_event_failed reason={} about={}/{} status={} error=\"{}\"",
                            reason,
                            about.getKind(),
                            about.getName(),
                            e.getCode(),
                            e.getMessage());
                }
            });
        } catch (RejectedExecutionException e) {
            log.debug("event=k8s_event_dropped reason={} detail=\"agent stopping\"", reason);
        }
    }

    @Override
    public void close() {
        sender.shutdown();
    }
}
