package io.omai.harness.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.KubernetesResource;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.DaemonSet;
import io.fabric8.kubernetes.api.model.rbac.ClusterRole;
import io.fabric8.kubernetes.api.model.rbac.ClusterRoleBinding;
import io.fabric8.kubernetes.api.model.rbac.PolicyRule;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceClass;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequest;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimTemplate;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.simulator.node.AgentYaml;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code daemonset/components/dra}: the DRA variant of the DaemonSet. Its configuration is the base's plus a
 * {@code dra:} section the agent's own loader accepts; the sockets and CDI directory it mounts are the ones that
 * configuration names; RBAC is exactly what the driver needs; the DeviceClasses and example claims name the driver
 * the configuration sets. That the classes select the devices the agent really publishes, and that the examples'
 * capacities and attributes exist on them, is checked against the agent's live slice in
 * {@code io.omai.harness.dra.DraEndToEndTest}. Where kubectl is installed (CI has it), {@code kubectl kustomize}
 * renders the base with the component and the merged objects are checked too.
 */
class DraComponentTest {
    private static final Path COMPONENT = ManifestsTest.DAEMONSET.resolve("components/dra");
    private static final KubernetesSerialization K8S = new KubernetesSerialization();

    /** The component's ClusterRole, rule by rule: apiGroup / resource / verb. */
    private static final Set<String> DRA_RBAC = Set.of(
            "resource.k8s.io/resourceslices/get",
            "resource.k8s.io/resourceslices/list",
            "resource.k8s.io/resourceslices/watch",
            "resource.k8s.io/resourceslices/create",
            "resource.k8s.io/resourceslices/update",
            "resource.k8s.io/resourceslices/patch",
            "resource.k8s.io/resourceslices/delete",
            "resource.k8s.io/resourceclaims/get",
            "/nodes/get",
            "/events/create");

    @TempDir
    Path scratch;

    private static <T> T load(Path file, Class<T> type) {
        try {
            Object parsed = K8S.unmarshal(Files.readString(file));
            assertThat(parsed).as("%s", file).isInstanceOf(type);
            return type.cast(parsed);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String configOf(Path configMap) {
        return load(configMap, ConfigMap.class).getData().get("config.yaml");
    }

    private static AgentConfig componentConfig() throws Exception {
        return ConfigLoader.parse(
                "components/dra/configmap-patch.yaml", configOf(COMPONENT.resolve("configmap-patch.yaml")));
    }

    @Test
    void theConfigurationIsTheBasesPlusADraSectionTheAgentAccepts() throws Exception {
        String base = configOf(ManifestsTest.DAEMONSET.resolve("configmap.yaml"));
        String component = configOf(COMPONENT.resolve("configmap-patch.yaml"));
        assertThat(component)
                .as("the component's config.yaml starts with the base's, unchanged (copy the base after editing it)")
                .startsWith(base);
        assertThat(component.substring(base.length()).strip()).startsWith("dra:");

        AgentConfig config = componentConfig();
        AgentConfig.Dra dra = config.dra();
        assertThat(dra.enabled()).isTrue();
        assertThat(dra.driverName())
                .isEqualTo(ConfigLoader.defaults().dra().driverName())
                .isEqualTo(AgentYaml.DRA_DRIVER);
        // everything else as the base: DRA is added, nothing else changes
        assertThat(config.dra()).isEqualTo(withEnabled(ConfigLoader.defaults().dra()));
        assertThat(ConfigLoader.parse("base", base).tenancy()).isEqualTo(config.tenancy());
    }

    private static AgentConfig.Dra withEnabled(AgentConfig.Dra dra) {
        return new AgentConfig.Dra(
                true,
                dra.driverName(),
                dra.pluginsRegistryDir(),
                dra.pluginDir(),
                dra.cdiDir(),
                dra.deviceClass(),
                dra.memoryMinimum(),
                dra.memoryStep(),
                dra.sliceUpdateDebounce());
    }

    @Test
    void theDaemonSetMountsTheDirectoriesTheConfigurationNamesAtTheSamePathsAndNeverSurges() throws Exception {
        AgentConfig.Dra dra = componentConfig().dra();
        DaemonSet patch = load(COMPONENT.resolve("daemonset-patch.yaml"), DaemonSet.class);
        assertThat(patch.getSpec().getUpdateStrategy().getType()).isEqualTo("RollingUpdate");
        assertThat(patch.getSpec()
                        .getUpdateStrategy()
                        .getRollingUpdate()
                        .getMaxSurge()
                        .getIntVal())
                .as("kubelet must see one registration per node")
                .isZero();
        Map<String, String> hostPathOf = new java.util.HashMap<>();
        for (Volume volume : patch.getSpec().getTemplate().getSpec().getVolumes()) {
            hostPathOf.put(volume.getName(), volume.getHostPath().getPath());
        }
        Container agent =
                patch.getSpec().getTemplate().getSpec().getContainers().getFirst();
        assertThat(agent.getName()).isEqualTo("omai-agent");
        List<String> mounted = new ArrayList<>();
        for (VolumeMount mount : agent.getVolumeMounts()) {
            assertThat(hostPathOf.get(mount.getName()))
                    .as(
                            "volume %s is mounted at its host path (kubelet and the runtime resolve these on the host)",
                            mount.getName())
                    .isEqualTo(mount.getMountPath());
            assertThat(mount.getReadOnly() != null && mount.getReadOnly())
                    .as("the agent creates sockets and specs in %s", mount.getMountPath())
                    .isFalse();
            mounted.add(mount.getMountPath());
        }
        assertThat(mounted)
                .containsExactlyInAnyOrder(
                        dra.pluginsRegistryDir().toString(),
                        dra.pluginDir().toString(),
                        dra.cdiDir().toString());
        renderedWithKubectlWhereInstalled();
    }

    @Test
    void rbacIsExactlyWhatTheDriverNeedsAndBindsTheAgentsServiceAccount() {
        ClusterRole role = load(COMPONENT.resolve("clusterrole.yaml"), ClusterRole.class);
        Set<String> rules = new TreeSet<>();
        for (PolicyRule rule : role.getRules()) {
            for (String group : rule.getApiGroups()) {
                for (String resource : rule.getResources()) {
                    for (String verb : rule.getVerbs()) {
                        rules.add(group + "/" + resource + "/" + verb);
                    }
                }
            }
        }
        assertThat(rules).isEqualTo(new TreeSet<>(DRA_RBAC));
        ClusterRoleBinding binding = load(COMPONENT.resolve("clusterrolebinding.yaml"), ClusterRoleBinding.class);
        ClusterRoleBinding base =
                load(ManifestsTest.DAEMONSET.resolve("clusterrolebinding.yaml"), ClusterRoleBinding.class);
        assertThat(binding.getRoleRef().getName()).isEqualTo(role.getMetadata().getName());
        assertThat(binding.getSubjects()).isEqualTo(base.getSubjects());

        GenericKubernetesResource component =
                load(COMPONENT.resolve("kustomization.yaml"), GenericKubernetesResource.class);
        assertThat(component.getKind()).isEqualTo("Component");
        assertThat(strings(component.getAdditionalProperties().get("resources")))
                .containsExactlyInAnyOrder("clusterrole.yaml", "clusterrolebinding.yaml");
    }

    @Test
    void theDeviceClassesAndExamplesNameTheDriverTheAgentIsConfiguredWith() throws Exception {
        String driver = componentConfig().dra().driverName();
        GenericKubernetesResource classes =
                load(COMPONENT.resolve("deviceclasses/kustomization.yaml"), GenericKubernetesResource.class);
        assertThat(classes.getAdditionalProperties())
                .as("cluster-scoped: no namespace")
                .doesNotContainKey("namespace");
        List<String> classNames = new ArrayList<>();
        for (String file : strings(classes.getAdditionalProperties().get("resources"))) {
            DeviceClass deviceClass = load(COMPONENT.resolve("deviceclasses").resolve(file), DeviceClass.class);
            classNames.add(deviceClass.getMetadata().getName());
            assertThat(deviceClass.getSpec().getSelectors())
                    .singleElement()
                    .satisfies(selector -> assertThat(selector.getCel().getExpression())
                            .contains("device.driver == \"" + driver + "\""));
            for (String domain : attributeDomains(
                    deviceClass.getSpec().getSelectors().getFirst().getCel().getExpression())) {
                assertThat(domain).as("attribute domain in %s", file).isEqualTo(driver);
            }
        }
        assertThat(classNames).containsExactlyInAnyOrder("omai-gpu-share", "omai-gpu", "omai-ib-vf");

        ResourceClaimTemplate share =
                load(COMPONENT.resolve("examples/resourceclaimtemplate-share.yaml"), ResourceClaimTemplate.class);
        DeviceRequest shareRequest =
                share.getSpec().getSpec().getDevices().getRequests().getFirst();
        assertThat(shareRequest.getExactly().getDeviceClassName())
                .isIn(classNames)
                .isEqualTo("omai-gpu-share");
        assertThat(shareRequest.getExactly().getCapacity().getRequests())
                .containsEntry("milli", new io.fabric8.kubernetes.api.model.Quantity("250"))
                .containsEntry("memory", new io.fabric8.kubernetes.api.model.Quantity("20Gi"));
        assertThat(shareRequest.getExactly().getTolerations()).singleElement().satisfies(toleration -> {
            assertThat(toleration.getKey()).isEqualTo(io.omai.agent.tenancy.TenantIdentity.DEFAULT_LABEL);
            assertThat(toleration.getEffect()).isEqualTo("NoSchedule");
        });

        ResourceClaimTemplate whole =
                load(COMPONENT.resolve("examples/resourceclaimtemplate-whole-gpu.yaml"), ResourceClaimTemplate.class);
        DeviceRequest wholeRequest =
                whole.getSpec().getSpec().getDevices().getRequests().getFirst();
        assertThat(wholeRequest.getExactly().getDeviceClassName()).isEqualTo("omai-gpu");
        assertThat(wholeRequest.getExactly().getCapacity())
                .as("a whole GPU consumes the defaults")
                .isNull();

        ResourceClaimTemplate training =
                load(COMPONENT.resolve("examples/resourceclaimtemplate-4gpu-vf.yaml"), ResourceClaimTemplate.class);
        var devices = training.getSpec().getSpec().getDevices();
        assertThat(devices.getRequests())
                .extracting(r -> r.getExactly().getDeviceClassName() + "x"
                        + r.getExactly().getCount())
                .containsExactly("omai-gpux4", "omai-ib-vfx1");
        assertThat(devices.getConstraints()).singleElement().satisfies(constraint -> {
            assertThat(constraint.getRequests()).containsExactly("gpus", "vf");
            assertThat(constraint.getMatchAttribute()).isEqualTo(driver + "/numaNode");
        });
    }

    /** Where kubectl is installed, kustomize's own merge of the base with the component is checked too. */
    private void renderedWithKubectlWhereInstalled() throws Exception {
        Path kubectl = Path.of("/usr/bin/kubectl");
        if (!Files.isExecutable(kubectl)) {
            return; // the caller checked the component's files in Java already
        }
        Path copy = scratch.resolve("daemonset");
        copyTree(ManifestsTest.DAEMONSET, copy);
        Path kustomization = copy.resolve("kustomization.yaml");
        Files.writeString(kustomization, Files.readString(kustomization) + "components:\n  - components/dra\n");
        String rendered = run(List.of(kubectl.toString(), "kustomize", copy.toString()));
        List<KubernetesResource> objects = new ArrayList<>();
        for (String document : rendered.split("(?m)^---$", -1)) {
            if (!document.isBlank()) {
                objects.add(K8S.unmarshal(document));
            }
        }
        DaemonSet daemonSet = objects.stream()
                .filter(DaemonSet.class::isInstance)
                .map(DaemonSet.class::cast)
                .findFirst()
                .orElseThrow();
        List<String> mounts = daemonSet.getSpec().getTemplate().getSpec().getContainers().stream()
                .filter(c -> c.getName().equals("omai-agent"))
                .flatMap(c -> c.getVolumeMounts().stream())
                .map(VolumeMount::getMountPath)
                .toList();
        AgentConfig.Dra dra = componentConfig().dra();
        assertThat(mounts)
                .contains(
                        dra.pluginsRegistryDir().toString(),
                        dra.pluginDir().toString(),
                        dra.cdiDir().toString())
                .contains("/var/lib/kubelet/device-plugins");
        assertThat(daemonSet
                        .getSpec()
                        .getUpdateStrategy()
                        .getRollingUpdate()
                        .getMaxSurge()
                        .getIntVal())
                .isZero();
        ConfigMap config = objects.stream()
                .filter(ConfigMap.class::isInstance)
                .map(ConfigMap.class::cast)
                .findFirst()
                .orElseThrow();
        assertThat(ConfigLoader.parse("rendered", config.getData().get("config.yaml"))
                        .dra()
                        .enabled())
                .isTrue();
        assertThat(objects.stream()
                        .filter(ClusterRole.class::isInstance)
                        .map(o -> ((ClusterRole) o).getMetadata().getName()))
                .containsExactlyInAnyOrder("omai-agent", "omai-agent-dra");

        String classes = run(List.of(
                kubectl.toString(),
                "kustomize",
                copy.resolve("components/dra/deviceclasses").toString()));
        assertThat(classes).contains("kind: DeviceClass").doesNotContain("namespace:");
    }

    private static Set<String> attributeDomains(String expression) {
        Set<String> domains = new TreeSet<>();
        Matcher matcher =
                Pattern.compile("device\\.attributes\\[\"([^\"]+)\"\\]").matcher(expression);
        while (matcher.find()) {
            domains.add(matcher.group(1));
        }
        return domains;
    }

    @SuppressWarnings("unchecked")
    private static List<String> strings(Object value) {
        return (List<String>) value;
    }

    private static String run(List<String> command) throws Exception {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).as("%s:\n%s", command, output).isZero();
        return output;
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (var files = Files.walk(from)) {
            for (Path file : files.toList()) {
                Path target = to.resolve(from.relativize(file).toString());
                if (Files.isDirectory(file)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(file, target);
                }
            }
        }
    }
}
