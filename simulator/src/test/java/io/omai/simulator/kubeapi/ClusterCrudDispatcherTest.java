package io.omai.simulator.kubeapi;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.api.model.BindingBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.authentication.TokenReview;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.mockwebserver.Context;
import io.fabric8.mockwebserver.MockWebServer;
import java.net.InetAddress;
import java.util.HashMap;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** What the simulated cluster's API server adds to fabric8's CRUD mock, through fabric8's own client. */
class ClusterCrudDispatcherTest {
    private final ClusterCrudDispatcher dispatcher = new ClusterCrudDispatcher()
            .acceptToken("extender-token", "system:serviceaccount:omai-system:omai-scheduler-extender");
    private KubernetesMockServer server;
    private KubernetesClient client;

    @BeforeEach
    void start() {
        server = new KubernetesMockServer(new Context(), new MockWebServer(), new HashMap<>(), dispatcher, false);
        server.init(InetAddress.getLoopbackAddress(), 0);
        client = server.createClient();
    }

    @AfterEach
    void stop() {
        client.close();
        server.destroy();
    }

    @Test
    void anInformersNodeSelectorIsDroppedWhateverTheNode() {
        assertThat(ClusterCrudDispatcher.withoutNodeSelector("/api/v1/pods?fieldSelector=spec.nodeName%3Dsim-node"))
                .isEqualTo("/api/v1/pods");
        assertThat(ClusterCrudDispatcher.withoutNodeSelector(
                        "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-2&resourceVersion=0"))
                .isEqualTo("/api/v1/pods?resourceVersion=0");
        assertThat(ClusterCrudDispatcher.withoutNodeSelector("/api/v1/pods?allowWatchBookmarks=true&fieldSelector="
                        + "spec.nodeName%3Dsim-node&resourceVersion=1&watch=true"))
                .isEqualTo("/api/v1/pods?allowWatchBookmarks=true&resourceVersion=1&watch=true");
        assertThat(ClusterCrudDispatcher.withoutNodeSelector("/api/v1/pods?watch=true&fieldSelector=spec.nodeName=n3"))
                .isEqualTo("/api/v1/pods?watch=true");
    }

    @Test
    void anotherFieldIsLeftAlone() {
        for (String path :
                new String[] {"/api/v1/pods?fieldSelector=metadata.name%3Dx", "/api/v1/namespaces/a/pods/sim-node"}) {
            assertThat(ClusterCrudDispatcher.withoutNodeSelector(path)).isEqualTo(path);
        }
    }

    @Test
    void aBindingAssignsThePodOnceAndASecondBindingConflicts() {
        client.pods().inNamespace("team-a").resource(pod("p1")).create();
        bind("p1", "node-1");
        assertThat(client.pods()
                        .inNamespace("team-a")
                        .withName("p1")
                        .get()
                        .getSpec()
                        .getNodeName())
                .isEqualTo("node-1");
        assertThatThrownBy(() -> bind("p1", "node-2"))
                .isInstanceOf(KubernetesClientException.class)
                .satisfies(e ->
                        assertThat(((KubernetesClientException) e).getCode()).isEqualTo(409))
                .hasMessageContaining("already assigned to node \"node-1\"");
        assertThat(client.pods()
                        .inNamespace("team-a")
                        .withName("p1")
                        .get()
                        .getSpec()
                        .getNodeName())
                .isEqualTo("node-1");
        assertThatThrownBy(() -> bind("missing", "node-1"))
                .isInstanceOf(KubernetesClientException.class)
                .satisfies(e ->
                        assertThat(((KubernetesClientException) e).getCode()).isEqualTo(404));
    }

    @Test
    void ofConcurrentBindingsOfOnePodExactlyOneWins() throws Exception {
        for (int round = 0; round < 10; round++) {
            String name = "race-" + round;
            client.pods().inNamespace("team-a").resource(pod(name)).create();
            var won = new ConcurrentLinkedQueue<String>();
            var go = new CountDownLatch(1);
            try (var pool = Executors.newFixedThreadPool(4)) {
                for (int i = 0; i < 4; i++) {
                    String node = "node-" + i;
                    var _ = pool.submit(() -> {
                        go.await();
                        try {
                            bind(name, node);
                            won.add(node);
                        } catch (KubernetesClientException e) {
                            assertThat(e.getCode()).isEqualTo(409);
                        }
                        return null;
                    });
                }
                go.countDown();
            }
            assertThat(won).hasSize(1);
            assertThat(client.pods()
                            .inNamespace("team-a")
                            .withName(name)
                            .get()
                            .getSpec()
                            .getNodeName())
                    .isEqualTo(won.peek());
        }
    }

    @Test
    void aTokenReviewAuthenticatesOnlyAcceptedTokens() {
        TokenReview known = client.resource(new TokenReviewBuilder()
                        .withNewSpec()
                        .withToken("extender-token")
                        .withAudiences(List.of("omai-agent"))
                        .endSpec()
                        .build())
                .create();
        assertThat(known.getStatus().getAuthenticated()).isTrue();
        assertThat(known.getStatus().getUser().getUsername())
                .isEqualTo("system:serviceaccount:omai-system:omai-scheduler-extender");
        TokenReview unknown = client.resource(new TokenReviewBuilder()
                        .withNewSpec()
                        .withToken("forged")
                        .endSpec()
                        .build())
                .create();
        assertThat(unknown.getStatus().getAuthenticated()).isFalse();
        assertThat(unknown.getStatus().getError()).contains("not one this API server issued");
    }

    private void bind(String pod, String node) {
        client.bindings()
                .inNamespace("team-a")
                .resource(new BindingBuilder()
                        .withNewMetadata()
                        .withName(pod)
                        .endMetadata()
                        .withNewTarget()
                        .withKind("Node")
                        .withName(node)
                        .endTarget()
                        .build())
                .create();
    }

    private static Pod pod(String name) {
        return new PodBuilder()
                .withNewMetadata()
                .withName(name)
                .withNamespace("team-a")
                .endMetadata()
                .withNewSpec()
                .addNewContainer()
                .withName("main")
                .withImage("x")
                .endContainer()
                .endSpec()
                .build();
    }
}
