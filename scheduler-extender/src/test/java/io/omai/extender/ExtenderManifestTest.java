package io.omai.extender;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.omai.extender.decide.PodDemand;
import io.omai.extender.http.ExtenderRoutes;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.Test;

/**
 * The deploy manifests agree with the module and with each other: the KubeSchedulerConfiguration calls the verbs
 * the extender serves, on the port it listens on, for the resources it manages; the extender finds the agents'
 * Service of daemonset/; the token it sends has the agents' audience; RBAC grants exactly what it uses.
 */
class ExtenderManifestTest {
    private static final Path DEPLOY = Path.of("deploy");
    private static final Path AGENT_SERVICE = Path.of("..", "daemonset", "service.yaml");
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    private static List<JsonNode> documents(Path file) throws IOException {
        try (var parser = YAML.getFactory().createParser(Files.readString(file))) {
            List<JsonNode> docs = new ArrayList<>();
            YAML.readValues(parser, JsonNode.class).forEachRemaining(doc -> {
                if (doc != null && !doc.isNull() && !doc.isMissingNode()) {
                    docs.add(doc);
                }
            });
            return docs;
        }
    }

    private static JsonNode only(Path file, String kind) throws IOException {
        return documents(file).stream()
                .filter(doc -> doc.path("kind").asText().equals(kind))
                .findFirst()
                .orElseThrow(() -> new AssertionError(file + " has no " + kind));
    }

    private static JsonNode schedulerConfiguration() throws IOException {
        JsonNode map = only(DEPLOY.resolve("kube-scheduler-config.yaml"), "ConfigMap");
        return YAML.readTree(map.path("data").path("scheduler-config.yaml").asText());
    }

    private static JsonNode extenderConfiguration() throws IOException {
        JsonNode map = only(DEPLOY.resolve("extender-config.yaml"), "ConfigMap");
        return YAML.readTree(map.path("data").path("extender.yaml").asText());
    }

    @Test
    void kubeSchedulerCallsTheVerbsPortAndResourcesTheExtenderServes() throws Exception {
        JsonNode config = schedulerConfiguration();
        assertThat(config.path("apiVersion").asText()).isEqualTo("kubescheduler.config.k8s.io/v1");
        assertThat(config.path("kind").asText()).isEqualTo("KubeSchedulerConfiguration");
        assertThat(config.path("profiles").get(0).path("schedulerName").asText())
                .isEqualTo("omai-scheduler");
        JsonNode extender = config.path("extenders").get(0);
        assertThat(extender.path("filterVerb").asText()).isEqualTo(ExtenderRoutes.FILTER_VERB);
        assertThat(extender.path("prioritizeVerb").asText()).isEqualTo(ExtenderRoutes.PRIORITIZE_VERB);
        assertThat(extender.path("bindVerb").asText()).isEqualTo(ExtenderRoutes.BIND_VERB);
        assertThat(extender.path("nodeCacheCapable").asBoolean()).isTrue();
        assertThat(extender.path("ignorable").asBoolean()).isFalse();
        assertThat(extender.path("weight").asInt()).isPositive();
        assertThat(extender.path("httpTimeout").asText()).matches("[0-9]+s");
        assertThat(StreamSupport.stream(extender.path("managedResources").spliterator(), false)
                        .map(r -> r.path("name").asText() + " ignored="
                                + r.path("ignoredByScheduler").asBoolean()))
                .containsExactlyInAnyOrder(
                        PodDemand.MILLI_GPU + " ignored=false",
                        PodDemand.IB_VF + " ignored=false",
                        PodDemand.ROCE_VF + " ignored=false");

        URI url = URI.create(extender.path("urlPrefix").asText());
        int port = extenderConfiguration().path("http").path("port").asInt();
        JsonNode service = only(DEPLOY.resolve("extender-deployment.yaml"), "Service");
        assertThat(url.getHost())
                .isEqualTo(service.path("metadata").path("name").asText() + "."
                        + service.path("metadata").path("namespace").asText() + ".svc");
        assertThat(url.getPort())
                .isEqualTo(
                        service.path("spec").path("ports").get(0).path("port").asInt());
        JsonNode container = only(DEPLOY.resolve("extender-deployment.yaml"), "Deployment")
                .path("spec")
                .path("template")
                .path("spec")
                .path("containers")
                .get(0);
        assertThat(container.path("ports").get(0).path("containerPort").asInt()).isEqualTo(port);
        assertThat(service.path("spec").path("ports").get(0).path("targetPort").asText())
                .isEqualTo(container.path("ports").get(0).path("name").asText());
    }

    @Test
    void theExtenderConfigurationLoadsAndNamesTheAgentsServiceOfTheDaemonSet() throws Exception {
        JsonNode config = extenderConfiguration();
        try (var client = new KubernetesClientBuilder().build()) {
            ExtenderSettings settings = ExtenderConfigFile.parse(config, client);
            JsonNode agentService = only(AGENT_SERVICE, "Service");
            assertThat(settings.agents().service())
                    .isEqualTo(agentService.path("metadata").path("name").asText());
            assertThat(settings.agents().namespace())
                    .isEqualTo(agentService.path("metadata").path("namespace").asText());
            int schedApiPort = StreamSupport.stream(
                            agentService.path("spec").path("ports").spliterator(), false)
                    .filter(p -> p.path("name").asText().equals("sched-api"))
                    .findFirst()
                    .orElseThrow()
                    .path("port")
                    .asInt();
            assertThat(settings.agents().port()).isEqualTo(schedApiPort);
            assertThat(settings.agents().tokenFile()).contains(Path.of("/var/run/secrets/omai/token"));
        }
    }

    @Test
    void theDeploymentRunsTwoReplicasWithATokenForTheAgentsAudience() throws Exception {
        JsonNode deployment = only(DEPLOY.resolve("extender-deployment.yaml"), "Deployment");
        assertThat(deployment.path("spec").path("replicas").asInt()).isGreaterThanOrEqualTo(2);
        JsonNode pod = deployment.path("spec").path("template").path("spec");
        assertThat(pod.path("serviceAccountName").asText()).isEqualTo("omai-scheduler-extender");
        JsonNode projected = StreamSupport.stream(pod.path("volumes").spliterator(), false)
                .filter(v -> v.has("projected"))
                .findFirst()
                .orElseThrow();
        JsonNode token = projected.path("projected").path("sources").get(0).path("serviceAccountToken");
        assertThat(token.path("audience").asText()).isEqualTo("omai-node-agent");
        JsonNode mount = StreamSupport.stream(
                        pod.path("containers").get(0).path("volumeMounts").spliterator(), false)
                .filter(m ->
                        m.path("name").asText().equals(projected.path("name").asText()))
                .findFirst()
                .orElseThrow();
        assertThat(Path.of(mount.path("mountPath").asText())
                        .resolve(token.path("path").asText())
                        .toString())
                .isEqualTo(
                        extenderConfiguration().path("agents").path("tokenFile").asText());
    }

    @Test
    void theAgentsNetworkPolicyAdmitsTheExtendersPods() throws Exception {
        JsonNode policy = only(Path.of("..", "daemonset", "networkpolicy.yaml"), "NetworkPolicy");
        JsonNode podLabels = only(DEPLOY.resolve("extender-deployment.yaml"), "Deployment")
                .path("spec")
                .path("template")
                .path("metadata")
                .path("labels");
        boolean admitted = StreamSupport.stream(
                        policy.path("spec").path("ingress").spliterator(), false)
                .filter(rule -> StreamSupport.stream(rule.path("ports").spliterator(), false)
                        .anyMatch(port -> port.path("port").asText().equals("sched-api")))
                .flatMap(rule -> StreamSupport.stream(rule.path("from").spliterator(), false))
                .anyMatch(from -> {
                    var wanted = from.path("podSelector").path("matchLabels");
                    var names = new ArrayList<String>();
                    wanted.fieldNames().forEachRemaining(names::add);
                    return !names.isEmpty()
                            && names.stream()
                                    .allMatch(k -> podLabels
                                            .path(k)
                                            .asText()
                                            .equals(wanted.path(k).asText()));
                });
        assertThat(admitted)
                .as("daemonset/networkpolicy.yaml lets the extender's pods reach sched-api")
                .isTrue();
    }

    @Test
    void rbacGrantsTheExtenderExactlyWhatItUses() throws Exception {
        JsonNode role = documents(DEPLOY.resolve("rbac.yaml")).stream()
                .filter(d -> d.path("kind").asText().equals("ClusterRole")
                        && d.path("metadata").path("name").asText().equals("omai-scheduler-extender"))
                .findFirst()
                .orElseThrow();
        Set<String> grants = new java.util.TreeSet<>();
        for (JsonNode rule : role.path("rules")) {
            for (JsonNode group : rule.path("apiGroups")) {
                for (JsonNode resource : rule.path("resources")) {
                    for (JsonNode verb : rule.path("verbs")) {
                        grants.add(group.asText() + "/" + resource.asText() + ":" + verb.asText());
                    }
                }
            }
        }
        assertThat(grants)
                .containsExactlyInAnyOrder(
                        "/pods:get",
                        "/pods:list",
                        "/pods:watch",
                        "/pods/binding:create",
                        "discovery.k8s.io/endpointslices:list",
                        "discovery.k8s.io/endpointslices:watch",
                        "/events:create",
                        "events.k8s.io/events:create");
    }

    @Test
    void theKustomizationListsEveryManifest() throws Exception {
        JsonNode kustomization = YAML.readTree(Files.readString(DEPLOY.resolve("kustomization.yaml")));
        Set<String> listed = StreamSupport.stream(
                        kustomization.path("resources").spliterator(), false)
                .map(JsonNode::asText)
                .collect(Collectors.toSet());
        try (Stream<Path> files = Files.list(DEPLOY)) {
            assertThat(listed)
                    .isEqualTo(files.map(p -> p.getFileName().toString())
                            .filter(n -> n.endsWith(".yaml") && !n.equals("kustomization.yaml"))
                            .collect(Collectors.toSet()));
        }
    }
}
