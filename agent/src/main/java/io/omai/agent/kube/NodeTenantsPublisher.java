package io.omai.agent.kube;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.dsl.base.PatchContext;
import io.fabric8.kubernetes.client.dsl.base.PatchType;
import io.omai.agent.lifecycle.LoopSlot;
import io.omai.agent.lifecycle.SupervisedLoop;
import java.time.Duration;
import java.util.Objects;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeSet;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Publishes the tenants with GPU work on this node (allocations and reservations) as the node annotation
 * {@value #ANNOTATION} ({@code "team-a,team-b"}, sorted; empty when none), for schedulers that keep tenants
 * apart with plain Kubernetes affinity rules or admission policies. Checks every period and patches (JSON merge
 * patch of the annotation only) when the set changed or the last patch failed.
 */
public final class NodeTenantsPublisher implements AutoCloseable {
    public static final String ANNOTATION = "omai.io/tenants";
    private static final Logger log = LoggerFactory.getLogger(NodeTenantsPublisher.class);

    private final KubernetesClient client;
    private final String nodeName;
    private final Supplier<Set<String>> tenants;
    private final LoopSlot loop = new LoopSlot();
    private volatile String published;

    public NodeTenantsPublisher(KubernetesClient client, String nodeName, Supplier<Set<String>> tenants) {
        this.client = Objects.requireNonNull(client, "client");
        this.nodeName = Objects.requireNonNull(nodeName, "nodeName");
        this.tenants = Objects.requireNonNull(tenants, "tenants");
    }

    /** Publishes at once and then every {@code periodMillis}, on a supervised loop. */
    public NodeTenantsPublisher start(long periodMillis) {
        Duration period = Duration.ofMillis(periodMillis);
        loop.startIfIdle(() -> SupervisedLoop.start(
                "node-tenants",
                Duration.ZERO,
                period,
                period.multipliedBy(10).plus(Duration.ofSeconds(60)),
                this::publishIfChanged));
        return this;
    }

    /** Patches the annotation now if the tenants differ from what was last published. */
    public void publishIfChanged() {
        try {
            SortedSet<String> now = new TreeSet<>(tenants.get());
            String value = String.join(",", now);
            if (value.equals(published)) {
                return;
            }
            String patch = "{\"metadata\":{\"annotations\":{\"" + ANNOTATION + "\":\"" + escape(value) + "\"}}}";
            client.nodes().withName(nodeName).patch(PatchContext.of(PatchType.JSON_MERGE), patch);
            published = value;
            log.info("event=node_tenants_published node={} tenants=\"{}\"", nodeName, value);
        } catch (KubernetesClientException e) {
            log.warn(
                    "event=node_tenants_not_published node={} status={} error=\"{}\"",
                    nodeName,
                    e.getCode(),
                    e.getMessage());
        } catch (RuntimeException e) {
            log.warn("event=node_tenants_not_published node={}", nodeName, e);
        }
    }

    /** The value last patched onto the node, null before the first success. */
    public String published() {
        return published;
    }

    private static String escape(String value) {
        return value.replace("\\", "\\\\").replace("\"", "\\\"");
    }

    @Override
    public void close() {
        loop.close();
    }
}
