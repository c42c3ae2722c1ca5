package io.omai.extender;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.api.model.ContainerBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSlice;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSliceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;

/** Test vocabulary: agents' EndpointSlices, GPU pods, and kube-scheduler's HTTP calls. */
public final class Cluster {
    public static final String NAMESPACE = "omai-system";
    public static final String SERVICE = "omai-node-agent";
    public static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    private Cluster() {}

    /** One EndpointSlice per agent (each test agent listens on its own loopback port). */
    public static void publish(KubernetesClient client, TestAgent agent) {
        EndpointSlice slice = new EndpointSliceBuilder()
                .withNewMetadata()
                .withName(SERVICE + "-" + agent.nodeName())
                .withNamespace(NAMESPACE)
                .addToLabels("kubernetes.io/service-name", SERVICE)
                .endMetadata()
                .withAddressType("IPv4")
                .addNewPort()
                .withName("scheduler-api")
                .withPort(agent.port())
                .withProtocol("TCP")
                .endPort()
                .addNewEndpoint()
                .withAddresses("127.0.0.1")
                .withNodeName(agent.nodeName())
                .withNewConditions()
                .withReady(true)
                .endConditions()
                .endEndpoint()
                .build();
        client.discovery()
                .v1()
                .endpointSlices()
                .inNamespace(NAMESPACE)
                .resource(slice)
                .createOr(r -> r.update());
    }

    /** A pod in {@code namespace} whose containers ask for these milli-GPUs (0: none), with optional labels. */
    public static Pod pod(String namespace, String name, Map<String, String> labels, int... milli) {
        var builder = new PodBuilder()
                .withNewMetadata()
                .withName(name)
                .withNamespace(namespace)
                .withUid("uid-" + name)
                .withLabels(labels)
                .endMetadata()
                .withNewSpec()
                .withSchedulerName("omai-scheduler")
                .endSpec();
        for (int i = 0; i < milli.length; i++) {
            builder.editSpec()
                    .addToContainers(new ContainerBuilder()
                            .withName("c" + i)
                            .withImage("registry.example/train:1")
                            .withNewResources()
                            .addToLimits("omai.io/milli-gpu", new Quantity(Integer.toString(milli[i])))
                            .endResources()
                            .build())
                    .endSpec();
        }
        return builder.build();
    }

    /** kube-scheduler's filter/prioritize body with nodeCacheCapable: true. */
    public static String args(Pod pod, List<String> nodes) throws IOException {
        return JSON.writeValueAsString(Map.of("Pod", pod, "NodeNames", nodes));
    }

    public static HttpResponse<String> post(int port, String verb, String body)
            throws IOException, InterruptedException {
        return HTTP.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/" + verb))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    public static JsonNode postJson(int port, String verb, String body) throws IOException, InterruptedException {
        HttpResponse<String> response = post(port, verb, body);
        if (response.statusCode() != 200) {
            throw new AssertionError(verb + " answered " + response.statusCode() + ": " + response.body());
        }
        return JSON.readTree(response.body());
    }
}
