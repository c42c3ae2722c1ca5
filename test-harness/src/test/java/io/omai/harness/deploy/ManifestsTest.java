package io.omai.harness.deploy;

import static io.omai.harness.deploy.AllowList.fields;
import static io.omai.harness.deploy.AllowList.listOf;
import static io.omai.harness.deploy.AllowList.mapOf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.KubernetesResource;
import io.fabric8.kubernetes.api.model.Namespace;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.SecurityContext;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.ServicePort;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.DaemonSet;
import io.fabric8.kubernetes.api.model.rbac.ClusterRole;
import io.fabric8.kubernetes.api.model.rbac.ClusterRoleBinding;
import io.fabric8.kubernetes.api.model.rbac.PolicyRule;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigException;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.metrics.contract.DocumentedFamilies;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The deployment artifacts in {@code daemonset/}: every manifest deserializes into the Kubernetes model with no
 * unknown field (a typo there is silently dropped by lenient tooling), the agent's own {@link ConfigLoader} accepts
 * the ConfigMap, the objects refer to each other correctly (mounts, ports, selectors, RBAC subjects, the paths the
 * agent gives kubelet), the pods get only the capabilities docs/operations.md justifies, and the Grafana dashboard
 * queries only the metrics the agent exports.
 */
class ManifestsTest {
    // here, not in AllowList: an interface constant holding its own subtype risks a class-initialization deadlock
    private static final AllowList SCALAR = new AllowList.Scalar();

    /** The families the agent exports: the table of docs/operations.md, "Metrics" (PromtoolCheckTest holds the scrape to it). */
    static final List<DocumentedFamilies.Family> FAMILIES = DocumentedFamilies.read();

    static final Set<String> METRICS =
            FAMILIES.stream().map(DocumentedFamilies.Family::name).collect(Collectors.toUnmodifiableSet());
    /** Histograms and summaries: queried through their _bucket, _sum and _count series. */
    static final Set<String> HISTOGRAMS = FAMILIES.stream()
            .filter(f -> f.type().equals("histogram") || f.type().equals("summary"))
            .map(DocumentedFamilies.Family::name)
            .collect(Collectors.toUnmodifiableSet());

    /** What the agent container may add back after dropping ALL (each one is justified in daemonset.yaml). */
    static final Set<String> AGENT_CAPABILITIES = Set.of("SYS_PTRACE", "KILL");
    /** The only additional capability the opt-in ib-sriov component grants. */
    static final Set<String> IB_SRIOV_CAPABILITIES = Set.of("SYS_PTRACE", "KILL", "NET_ADMIN");

    /** The ClusterRole, rule by rule: apiGroup / resource / verb. Nothing else, and no wildcards. */
    static final Set<String> RBAC = Set.of(
            "/pods/get",
            "/pods/list",
            "/pods/watch",
            "/events/create",
            "/events/patch",
            "/nodes/get",
            "/nodes/patch",
            "authentication.k8s.io/tokenreviews/create");

    static final Path ROOT = repositoryRoot();
    static final Path DAEMONSET = ROOT.resolve("daemonset");

    private static final KubernetesSerialization K8S = new KubernetesSerialization();
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    private static final ObjectMapper JSON = new ObjectMapper();

    /** One parsed file; {@code name} is its path under daemonset/. */
    record Manifest(String name, KubernetesResource object) {
        HasMetadata resource() {
            return (HasMetadata) object;
        }
    }

    private static final List<Manifest> MANIFESTS = loadAll();

    // ----------------------------------------------------------------------------------------------------------
    // Every manifest: parses, one object per file, no unknown field.

    @TestFactory
    Stream<DynamicTest> everyManifestParsesWithNoUnknownField() {
        assertThat(MANIFESTS).as("manifests under %s", DAEMONSET).hasSizeGreaterThanOrEqualTo(10);
        return MANIFESTS.stream()
                .map(m -> DynamicTest.dynamicTest(m.name(), () -> {
                    List<String> problems = new ArrayList<>();
                    if (m.object() instanceof GenericKubernetesResource generic) {
                        // No fabric8 model: allowed only for the kinds we have an allow-list for.
                        AllowList shape = allowListFor(generic);
                        if (shape == null) {
                            fail(
                                    m.name() + ": " + generic.getApiVersion() + " " + generic.getKind()
                                            + " is not a kind of the Kubernetes API fabric8 knows (misspelt apiVersion or kind?)");
                        }
                        problems.addAll(UnknownFields.in(generic.getMetadata(), "metadata"));
                        problems.addAll(shape.violations(generic.getAdditionalProperties(), ""));
                    } else {
                        problems.addAll(UnknownFields.in(m.object(), ""));
                    }
                    assertThat(problems)
                            .as("%s: fields the Kubernetes API does not have", m.name())
                            .isEmpty();
                    assertThat(m.resource().getMetadata() != null || isKustomize(m))
                            .as("%s has metadata", m.name())
                            .isTrue();
                }));
    }

    @Test
    void theUnknownFieldCheckCatchesATypo() {
        // The check above must not pass blind: a misspelt field, deep inside a pod template, is reported with its path.
        String typo = read(DAEMONSET.resolve("daemonset.yaml"))
                .replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalaton: false");
        KubernetesResource parsed = K8S.unmarshal(typo);
        assertThat(UnknownFields.in(parsed, ""))
                .anySatisfy(problem -> assertThat(problem)
                        .startsWith("spec.template.spec.initContainers[0].securityContext")
                        .contains("allowPrivilegeEscalaton"));
        Object monitor = Map.of("spec", Map.of("endpoints", List.of(Map.of("port", "metrics", "intervall", "30s"))));
        assertThat(SERVICE_MONITOR.violations(monitor, ""))
                .singleElement()
                .asString()
                .startsWith("spec.endpoints[0]: unknown field(s) [intervall]");
    }

    @Test
    void theKustomizationListsEveryManifestAndItsImageIsTheOneTheDaemonSetUses() {
        GenericKubernetesResource kustomization = kustomization("kustomization.yaml");
        Map<String, Object> spec = kustomization.getAdditionalProperties();
        List<String> resources = strings(spec.get("resources"));
        Set<String> topLevel = new TreeSet<>();
        MANIFESTS.stream()
                .map(Manifest::name)
                .filter(n -> !n.contains("/") && !n.equals("kustomization.yaml"))
                .forEach(topLevel::add);
        assertThat(new TreeSet<>(resources))
                .as("kustomization.yaml resources vs the files in daemonset/")
                .isEqualTo(topLevel);
        assertThat(resources).as("listed once each").doesNotHaveDuplicates();

        String namespace = (String) spec.get("namespace");
        assertThat(namespace).isEqualTo("omai-system");
        for (Manifest m : base()) {
            boolean clusterScoped = m.object() instanceof Namespace
                    || m.object() instanceof ClusterRole
                    || m.object() instanceof ClusterRoleBinding;
            assertThat(m.resource().getMetadata().getNamespace())
                    .as("%s namespace", m.name())
                    .isEqualTo(clusterScoped ? null : namespace);
        }
        assertThat(one(Namespace.class).getMetadata().getName()).isEqualTo(namespace);

        List<String> imageNames = maps(spec.get("images")).stream()
                .map(i -> (String) i.get("name"))
                .toList();
        for (Container c : allContainers(daemonSet().getSpec().getTemplate().getSpec())) {
            assertThat(imageNames)
                    .as("kustomize images entry for container %s (%s)", c.getName(), c.getImage())
                    .contains(c.getImage().replaceFirst(":[^:/]+$", ""));
        }
    }

    @Test
    void theConfigMapIsAcceptedByTheAgentsOwnConfigLoaderAndDocumentsTheDefaults() throws Exception {
        AgentConfig config = shippedConfig();
        // The ConfigMap spells out every key with its default; if a default changes in ConfigLoader, update it.
        assertThat(config)
                .as("configmap.yaml config.yaml vs ConfigLoader.defaults()")
                .isEqualTo(ConfigLoader.defaults());
        JsonNode tree = YAML.readTree(configText());
        assertThat(tree.has("nodeName"))
                .as("nodeName must come from NODE_NAME (spec.nodeName), not the ConfigMap")
                .isFalse();
        // Every key is written out (so the file is the reference), not left to the defaults.
        assertThat(fieldNames(tree))
                .containsExactlyInAnyOrder(
                        "version",
                        "resources",
                        "directories",
                        "sharing",
                        "shim",
                        "nvml",
                        "kubelet",
                        "metrics",
                        "schedulerApi",
                        "tenancy",
                        "ib");
        assertThat(fieldNames(tree.get("ib")))
                .containsExactlyInAnyOrder(
                        "enabled",
                        "resourceName",
                        "sysfsRoot",
                        "guidRange",
                        "desiredVfs",
                        "vfLinkState",
                        "pollInterval",
                        "rebindLock");
        assertThat(fieldNames(tree.get("metrics"))).containsExactlyInAnyOrder("address", "port");
        assertThat(fieldNames(tree.get("tenancy")))
                .containsExactlyInAnyOrder(
                        "policy",
                        "tenantLabel",
                        "kubernetesApi",
                        "identifyWait",
                        "gpus",
                        "otherGpuResource",
                        "audit",
                        "auditInterval");
        // tls and allowedClients are documented, commented out: the default is plaintext (see the comment there).
        assertThat(fieldNames(tree.get("schedulerApi")))
                .containsExactlyInAnyOrder(
                        "enabled",
                        "address",
                        "port",
                        "deviceLabels",
                        "reserveAuth",
                        "reserveCallers",
                        "tokenAudience",
                        "tokenCacheTtl");
        assertThat(fieldNames(tree.get("directories")))
                .containsExactlyInAnyOrder("devicePlugin", "podResourcesSocket", "state", "devRoot");
        assertThat(fieldNames(tree.get("sharing")))
                .containsExactlyInAnyOrder("memoryPolicy", "computeMode", "computeEnforced", "computePeriod", "cdi");
        assertThat(fieldNames(tree.get("nvml")))
                .containsExactlyInAnyOrder("library", "healthChecks", "recoveryDebounce", "ignoredXids");
        assertThat(fieldNames(tree.get("kubelet")))
                .containsExactlyInAnyOrder("registrationBackoffMax", "reconcileInterval", "releaseGracePeriod");
        assertThat(fieldNames(tree.get("shim")))
                .containsExactlyInAnyOrder("hostLibrary", "containerLibrary", "preloadFileMount");
    }

    @Test
    void theConfigLoaderRefusesATypoInTheConfigMapSoTheCheckAboveIsReal() {
        String typo = configText().replace("memoryPolicy:", "memoryPolcy:");
        try {
            ConfigLoader.parse("typo", typo);
            fail("ConfigLoader accepted sharing.memoryPolcy");
        } catch (ConfigException e) {
            assertThat(e.getMessage()).contains("sharing.memoryPolcy");
        }
    }

    @Test
    void theAgentSeesTheConfigFileTheDaemonSetPointsItAt() {
        Container agent = agentContainer();
        List<String> argv = new ArrayList<>(agent.getCommand());
        argv.addAll(agent.getArgs());
        assertThat(argv).as("agent command line").containsSequence("run", "--config");
        Path configPath = Path.of(argv.get(argv.indexOf("--config") + 1));

        VolumeMount mount = mountAt(agent, configPath.getParent().toString())
                .orElseThrow(() -> new AssertionError("no volume mounted at " + configPath.getParent()));
        Volume volume = volume(mount.getName());
        assertThat(volume.getConfigMap())
                .as("volume %s is a ConfigMap", volume.getName())
                .isNotNull();
        assertThat(mount.getSubPath())
                .as("whole-directory mount, so edits reach the pod")
                .isNull();
        ConfigMap configMap = one(ConfigMap.class);
        assertThat(volume.getConfigMap().getName())
                .isEqualTo(configMap.getMetadata().getName());
        String key = volume.getConfigMap().getItems().stream()
                .filter(item -> item.getPath().equals(configPath.getFileName().toString()))
                .map(io.fabric8.kubernetes.api.model.KeyToPath::getKey)
                .findFirst()
                .orElseThrow(() -> new AssertionError("no ConfigMap item is projected to " + configPath));
        assertThat(configMap.getData()).as("ConfigMap keys").containsKey(key);
    }

    @Test
    void hostPathsTheAgentHandsToKubeletAreMountedAtTheSamePath() throws Exception {
        AgentConfig config = shippedConfig();
        PodSpec pod = daemonSet().getSpec().getTemplate().getSpec();
        Container agent = agentContainer();

        assertIdentityMount(agent, config.directories().state(), false);
        assertIdentityMount(agent, config.directories().devicePlugin(), false);
        assertIdentityMount(agent, config.directories().podResourcesSocket().getParent(), true);

        // The shim: installed on the host by the init container, at the directory shim.hostLibrary names.
        Path shimDir = config.shim().hostLibrary().getParent();
        Container init = pod.getInitContainers().stream()
                .filter(c -> c.getName().equals("install-shim"))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no install-shim init container"));
        assertIdentityMount(init, shimDir, false);
        String script = String.join("\n", init.getCommand())
                + String.join("\n", Objects.requireNonNullElse(init.getArgs(), List.of()));
        assertThat(script)
                .as("install-shim script")
                .contains(shimDir.toString())
                .contains(config.shim().hostLibrary().getFileName().toString())
                .contains("mv -f");
        assertThat(init.getImage())
                .as("the shim comes from the agent's own image")
                .isEqualTo(agent.getImage());

        // The node name comes from the downward API (ConfigLoader reads NODE_NAME when nodeName is unset).
        EnvVar nodeName = agent.getEnv().stream()
                .filter(e -> e.getName().equals("NODE_NAME"))
                .findFirst()
                .orElseThrow(() -> new AssertionError("agent has no NODE_NAME"));
        assertThat(nodeName.getValueFrom().getFieldRef().getFieldPath()).isEqualTo("spec.nodeName");
    }

    @Test
    void everyVolumeMountNamesAVolumeAndEveryVolumeIsMounted() {
        PodSpec pod = daemonSet().getSpec().getTemplate().getSpec();
        Set<String> volumes =
                new TreeSet<>(pod.getVolumes().stream().map(Volume::getName).toList());
        assertThat(volumes).as("volume names are unique").hasSameSizeAs(pod.getVolumes());
        Set<String> mounted = new TreeSet<>();
        for (Container c : allContainers(pod)) {
            for (VolumeMount m : c.getVolumeMounts()) {
                assertThat(volumes)
                        .as("container %s mounts %s", c.getName(), m.getMountPath())
                        .contains(m.getName());
                mounted.add(m.getName());
            }
        }
        assertThat(mounted).as("volumes nobody mounts").isEqualTo(volumes);
    }

    @Test
    void podsRunUnprivilegedWithOnlyTheJustifiedCapabilities() {
        DaemonSet ds = daemonSet();
        PodSpec pod = ds.getSpec().getTemplate().getSpec();
        assertThat(pod.getHostPID()).as("hostPID (reaper, audit)").isTrue();
        assertThat(pod.getHostNetwork())
                .as("base has no host network (only components/ib-sriov)")
                .isNotEqualTo(true);
        assertThat(pod.getHostIPC()).isNotEqualTo(true);
        assertThat(pod.getPriorityClassName()).isEqualTo("system-node-critical");
        assertThat(pod.getSecurityContext().getSeccompProfile().getType()).isEqualTo("RuntimeDefault");
        assertThat(pod.getNodeSelector()).containsEntry("omai.io/gpu-node", "true");
        assertThat(pod.getTolerations()).anySatisfy(t -> {
            assertThat(t.getKey()).isEqualTo("nvidia.com/gpu");
            assertThat(t.getOperator()).isEqualTo("Exists");
        });
        assertThat(pod.getTerminationGracePeriodSeconds()).isNotNull();

        for (Container c : allContainers(pod)) {
            SecurityContext sc = c.getSecurityContext();
            assertThat(sc).as("%s securityContext", c.getName()).isNotNull();
            assertThat(sc.getPrivileged()).as("%s privileged", c.getName()).isNotEqualTo(true);
            assertThat(sc.getAllowPrivilegeEscalation())
                    .as("%s allowPrivilegeEscalation", c.getName())
                    .isFalse();
            assertThat(sc.getReadOnlyRootFilesystem())
                    .as("%s readOnlyRootFilesystem", c.getName())
                    .isTrue();
            assertThat(sc.getRunAsUser())
                    .as("%s runs as root, explicitly", c.getName())
                    .isZero();
            assertThat(sc.getCapabilities().getDrop())
                    .as("%s drops", c.getName())
                    .containsExactly("ALL");
            Set<String> added = new TreeSet<>(
                    Objects.requireNonNullElse(sc.getCapabilities().getAdd(), List.of()));
            assertThat(added)
                    .as("%s adds back", c.getName())
                    .isEqualTo(c.getName().equals("omai-agent") ? AGENT_CAPABILITIES : Set.of());
            assertThat(c.getResources().getRequests())
                    .as("%s requests", c.getName())
                    .containsKeys("cpu", "memory");
            assertThat(c.getResources().getLimits())
                    .as("%s limits memory only (no CPU throttling)", c.getName())
                    .containsOnlyKeys("memory");
        }
        var update = ds.getSpec().getUpdateStrategy();
        assertThat(update.getType()).isEqualTo("RollingUpdate");
        assertThat(update.getRollingUpdate().getMaxUnavailable().getIntVal()).isEqualTo(1);
        // No code reads the host's /dev (device specs name host paths for kubelet; the agent opens none): no mount.
        assertThat(pod.getVolumes())
                .as("a hostPath of the host's /dev")
                .noneMatch(v ->
                        v.getHostPath() != null && v.getHostPath().getPath().equals("/dev"));
        // Every hostPath the agent may write is one it needs; /sys is read-only in the base.
        for (String readOnly : List.of("/sys")) {
            Volume v = pod.getVolumes().stream()
                    .filter(x ->
                            x.getHostPath() != null && x.getHostPath().getPath().equals(readOnly))
                    .findFirst()
                    .orElseThrow(() -> new AssertionError("no hostPath " + readOnly));
            for (Container c : allContainers(pod)) {
                c.getVolumeMounts().stream()
                        .filter(m -> m.getName().equals(v.getName()))
                        .forEach(m -> assertThat(m.getReadOnly())
                                .as("%s mounts host %s read-only", c.getName(), readOnly)
                                .isTrue());
            }
        }
    }

    @Test
    void probesUseTheNamedMetricsPort() throws Exception {
        Container agent = agentContainer();
        Map<String, Integer> ports = new LinkedHashMap<>();
        agent.getPorts().forEach(p -> ports.put(p.getName(), p.getContainerPort()));
        assertThat(ports).containsEntry("metrics", 9400).containsEntry("sched-api", 9401);
        assertThat(shippedConfig().schedulerApi().port())
                .as("schedulerApi.port in configmap.yaml vs 'sched-api'")
                .isEqualTo(ports.get("sched-api"));
        assertThat(shippedConfig().metrics().port())
                .as("metrics.port in configmap.yaml vs the 'metrics' port")
                .isEqualTo(ports.get("metrics"));
        Map<String, Probe> probes = new LinkedHashMap<>();
        probes.put("startup", agent.getStartupProbe());
        probes.put("liveness", agent.getLivenessProbe());
        probes.put("readiness", agent.getReadinessProbe());
        probes.forEach((kind, probe) -> {
            assertThat(probe).as("%s probe", kind).isNotNull();
            assertThat(probe.getHttpGet().getPort().getStrVal())
                    .as("%s probe port", kind)
                    .isEqualTo("metrics");
        });
        assertThat(agent.getLivenessProbe().getHttpGet().getPath()).isEqualTo("/healthz");
        assertThat(agent.getReadinessProbe().getHttpGet().getPath()).isEqualTo("/readyz");
    }

    @Test
    void rbacIsLeastPrivilegeAndBindsTheDaemonSetsServiceAccount() {
        DaemonSet ds = daemonSet();
        String saName = ds.getSpec().getTemplate().getSpec().getServiceAccountName();
        ServiceAccount sa = one(ServiceAccount.class);
        assertThat(sa.getMetadata().getName())
                .as("the ServiceAccount the DaemonSet names exists")
                .isEqualTo(saName);
        assertThat(sa.getMetadata().getNamespace()).isEqualTo(ds.getMetadata().getNamespace());

        ClusterRole role = one(ClusterRole.class);
        Set<String> granted = new TreeSet<>();
        for (PolicyRule rule : role.getRules()) {
            assertThat(rule.getResourceNames()).isNullOrEmpty();
            assertThat(rule.getNonResourceURLs()).isNullOrEmpty();
            for (String group : rule.getApiGroups()) {
                for (String resource : rule.getResources()) {
                    for (String verb : rule.getVerbs()) {
                        granted.add(group + "/" + resource + "/" + verb);
                    }
                }
            }
        }
        assertThat(granted).as("no wildcards").noneMatch(g -> g.contains("*"));
        assertThat(granted).as("ClusterRole rules").isEqualTo(RBAC);

        ClusterRoleBinding binding = one(ClusterRoleBinding.class);
        assertThat(binding.getRoleRef().getKind()).isEqualTo("ClusterRole");
        assertThat(binding.getRoleRef().getName()).isEqualTo(role.getMetadata().getName());
        assertThat(binding.getSubjects()).singleElement().satisfies(s -> {
            assertThat(s.getKind()).isEqualTo("ServiceAccount");
            assertThat(s.getName()).isEqualTo(saName);
            assertThat(s.getNamespace()).isEqualTo(sa.getMetadata().getNamespace());
        });
    }

    @Test
    void theNetworkPolicyAdmitsTheSchedulerApiOnlyFromTheExtenderAndMetricsFromPrometheus() {
        DaemonSet ds = daemonSet();
        Map<String, String> podLabels = ds.getSpec().getTemplate().getMetadata().getLabels();
        io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy policy =
                one(io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy.class);

        assertThat(policy.getMetadata().getNamespace())
                .isEqualTo(ds.getMetadata().getNamespace());
        assertThat(podLabels)
                .as("the policy selects the agent pods")
                .containsAllEntriesOf(policy.getSpec().getPodSelector().getMatchLabels());
        assertThat(policy.getSpec().getPolicyTypes()).containsExactly("Ingress");
        Map<String, List<io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyPeer>> peersByPort =
                new LinkedHashMap<>();
        for (var rule : policy.getSpec().getIngress()) {
            assertThat(rule.getFrom()).as("no rule open to everyone").isNotEmpty();
            for (var port : rule.getPorts()) {
                peersByPort.put(port.getPort().getStrVal(), rule.getFrom());
            }
        }
        assertThat(peersByPort).containsOnlyKeys("sched-api", "metrics");
        assertThat(peersByPort.get("sched-api")).singleElement().satisfies(peer -> {
            assertThat(peer.getPodSelector().getMatchLabels())
                    .containsEntry("app.kubernetes.io/name", "omai-scheduler-extender");
            assertThat(peer.getNamespaceSelector().getMatchLabels())
                    .containsEntry(
                            "kubernetes.io/metadata.name", ds.getMetadata().getNamespace());
        });
        // the named ports exist on the agent container
        List<String> portNames = ds.getSpec().getTemplate().getSpec().getContainers().stream()
                .flatMap(c -> c.getPorts().stream())
                .map(io.fabric8.kubernetes.api.model.ContainerPort::getName)
                .toList();
        assertThat(portNames).contains("sched-api", "metrics");
    }

    @Test
    void theServiceSelectsTheAgentPodsAndTheServiceMonitorScrapesItsMetricsPort() {
        DaemonSet ds = daemonSet();
        Map<String, String> podLabels = ds.getSpec().getTemplate().getMetadata().getLabels();
        assertThat(podLabels)
                .as("pod labels include the DaemonSet selector")
                .containsAllEntriesOf(ds.getSpec().getSelector().getMatchLabels());

        Service service = one(Service.class);
        assertThat(service.getMetadata().getNamespace())
                .isEqualTo(ds.getMetadata().getNamespace());
        assertThat(service.getSpec().getClusterIP())
                .as("headless: one endpoint per node")
                .isEqualTo("None");
        assertThat(podLabels)
                .as("Service selector matches the agent pods")
                .containsAllEntriesOf(service.getSpec().getSelector());
        Map<String, Integer> containerPorts = new LinkedHashMap<>();
        agentContainer().getPorts().forEach((ContainerPort p) -> containerPorts.put(p.getName(), p.getContainerPort()));
        for (ServicePort port : service.getSpec().getPorts()) {
            String target = port.getTargetPort().getStrVal();
            assertThat(containerPorts)
                    .as("Service port %s targets a named container port", port.getName())
                    .containsKey(target);
            assertThat(port.getPort()).isEqualTo(containerPorts.get(target));
        }
        assertThat(service.getSpec().getPorts())
                .extracting(ServicePort::getName)
                .containsExactlyInAnyOrder("metrics", "sched-api");

        GenericKubernetesResource monitor = generic("ServiceMonitor");
        Map<String, Object> spec = map(monitor.getAdditionalProperties().get("spec"));
        Map<String, Object> selector = map(map(spec.get("selector")).get("matchLabels"));
        assertThat(service.getMetadata().getLabels())
                .as("ServiceMonitor selects the Service")
                .containsAllEntriesOf(stringMap(selector));
        assertThat(strings(map(spec.get("namespaceSelector")).get("matchNames")))
                .contains(service.getMetadata().getNamespace());
        Set<String> servicePorts = new TreeSet<>(
                service.getSpec().getPorts().stream().map(ServicePort::getName).toList());
        List<Map<String, Object>> endpoints = maps(spec.get("endpoints"));
        assertThat(endpoints).isNotEmpty();
        for (Map<String, Object> endpoint : endpoints) {
            assertThat(servicePorts).as("ServiceMonitor endpoint port").contains((String) endpoint.get("port"));
        }
        assertThat(endpoints).extracting(e -> e.get("port")).contains("metrics");
    }

    @Test
    void theIbSriovComponentPatchesTheBaseDaemonSetAndOnlyAddsWhatVfConfigurationNeeds() {
        GenericKubernetesResource component = kustomization("components/ib-sriov/kustomization.yaml");
        assertThat(component.getKind()).isEqualTo("Component");
        DaemonSet base = daemonSet();
        List<Map<String, Object>> patches =
                maps(component.getAdditionalProperties().get("patches"));
        assertThat(patches).isNotEmpty();
        for (Map<String, Object> patch : patches) {
            String file = "components/ib-sriov/" + patch.get("path");
            Manifest patchManifest = MANIFESTS.stream()
                    .filter(m -> m.name().equals(file))
                    .findFirst()
                    .orElseThrow(() -> new AssertionError("patch file " + file + " missing"));
            Map<String, Object> target = map(patch.get("target"));
            assertThat(target.get("kind")).isEqualTo("DaemonSet");
            assertThat(target.get("name")).isEqualTo(base.getMetadata().getName());

            DaemonSet ds = (DaemonSet) patchManifest.object();
            assertThat(ds.getMetadata().getName()).isEqualTo(base.getMetadata().getName());
            PodSpec pod = ds.getSpec().getTemplate().getSpec();
            assertThat(pod.getHostNetwork()).isTrue();
            assertThat(pod.getDnsPolicy()).as("cluster DNS on the host network").isEqualTo("ClusterFirstWithHostNet");
            Set<String> volumes = new TreeSet<>(base.getSpec().getTemplate().getSpec().getVolumes().stream()
                    .map(Volume::getName)
                    .toList());
            pod.getVolumes().forEach(v -> volumes.add(v.getName()));
            for (Container c : pod.getContainers()) {
                Container original = allContainers(base.getSpec().getTemplate().getSpec()).stream()
                        .filter(o -> o.getName().equals(c.getName()))
                        .findFirst()
                        .orElseThrow(() -> new AssertionError("patch names unknown container " + c.getName()));
                // A strategic merge replaces capabilities.add: the patch must keep the base's.
                assertThat(new TreeSet<>(
                                c.getSecurityContext().getCapabilities().getAdd()))
                        .containsAll(
                                original.getSecurityContext().getCapabilities().getAdd())
                        .isEqualTo(IB_SRIOV_CAPABILITIES);
                c.getVolumeMounts().forEach(m -> assertThat(volumes).contains(m.getName()));
            }
        }
    }

    // ----------------------------------------------------------------------------------------------------------
    // The image: daemonset/Dockerfile against the build's outputs and the DaemonSet.

    @Test
    void theImageShipsWhatTheBuildProducesWhereTheDaemonSetExpectsIt() throws Exception {
        String dockerfile = read(DAEMONSET.resolve("Dockerfile"));
        // Build-stage copies: `cp <build output> /out/<dir>/`; /out/ becomes /opt/omai/ in the runtime image.
        assertThat(dockerfile).contains("COPY --from=build /out/ /opt/omai/");
        Matcher copies =
                Pattern.compile("cp (?:-r )?([\\w./*-]+) /out/([\\w/]*)").matcher(dockerfile);
        Map<String, String> imagePaths = new LinkedHashMap<>();
        while (copies.find()) {
            String source = copies.group(1);
            Path built = ROOT.resolve(source.replace("/*.jar", ""));
            assertThat(built)
                    .as("the build produces %s (run through ./mvnw package)", source)
                    .exists();
            if (source.endsWith("/*.jar")) {
                try (Stream<Path> jars = Files.list(built)) {
                    assertThat(jars.anyMatch(j -> j.toString().endsWith(".jar")))
                            .as("jars in %s", built)
                            .isTrue();
                }
            }
            imagePaths.put(
                    source, "/opt/omai/" + copies.group(2) + Path.of(source).getFileName());
        }
        assertThat(imagePaths)
                .containsKeys(
                        "agent/target/omai-agent.jar", "agent/target/lib/*.jar", "native/build/lib/libomai-shim.so");

        // The launcher runs the jar where it was copied, with FFM allowed.
        String jar = imagePaths.get("agent/target/omai-agent.jar");
        assertThat(dockerfile)
                .contains("--enable-native-access=ALL-UNNAMED -jar " + jar)
                .contains("> /usr/local/bin/omai-agent");
        Container agent = agentContainer();
        assertThat(agent.getCommand()).containsExactly("/usr/local/bin/omai-agent");
        // The image's own entry point runs the same command line as the DaemonSet.
        Matcher entrypoint = Pattern.compile("(?m)^ENTRYPOINT (\\[.*])$").matcher(dockerfile);
        assertThat(entrypoint.find()).as("exec-form ENTRYPOINT").isTrue();
        List<String> argv = new ArrayList<>(agent.getCommand());
        argv.addAll(agent.getArgs());
        assertThat(JSON.readValue(entrypoint.group(1), String[].class)).containsExactlyElementsOf(argv);

        // The init container copies the shim from where the image has it.
        Container init = daemonSet()
                .getSpec()
                .getTemplate()
                .getSpec()
                .getInitContainers()
                .getFirst();
        assertThat(String.join("\n", init.getCommand()))
                .contains("cp " + imagePaths.get("native/build/lib/libomai-shim.so") + " ");
    }

    @Test
    void theJvmFlagsAreOneFileThatTheImageAndOmaiReadAndTheMemoryLimitCoversThem() {
        String dockerfile = read(DAEMONSET.resolve("Dockerfile"));
        assertThat(dockerfile)
                .contains("cp daemonset/jvm.options /out/agent/")
                .contains("exec java @/opt/omai/agent/jvm.options ");
        assertThat(read(ROOT.resolve(".dockerignore")).lines()).contains("!daemonset/jvm.options");
        assertThat(read(ROOT.resolve("omai"))).contains("@daemonset/jvm.options");
        List<String> envFlags = List.of("JDK_JAVA_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS");
        for (Container c : allContainers(daemonSet().getSpec().getTemplate().getSpec())) {
            assertThat(Objects.requireNonNullElse(c.getEnv(), List.<io.fabric8.kubernetes.api.model.EnvVar>of()))
                    .as("%s: JVM flags belong in daemonset/jvm.options only", c.getName())
                    .noneMatch(e -> envFlags.contains(e.getName()));
        }
        envFlags.forEach(flag -> assertThat(dockerfile).doesNotContain("ENV " + flag));

        Map<String, Long> sizes = new LinkedHashMap<>();
        Matcher size = Pattern.compile("(?m)^-(Xmx|XX:MaxMetaspaceSize=|XX:ReservedCodeCacheSize=)(\\d+)m$")
                .matcher(read(DAEMONSET.resolve("jvm.options")));
        while (size.find()) {
            sizes.put(size.group(1), Long.parseLong(size.group(2)));
        }
        assertThat(sizes).as("sizes in daemonset/jvm.options").hasSize(3);
        long bounded = sizes.values().stream().mapToLong(Long::longValue).sum();
        String limit = agentContainer().getResources().getLimits().get("memory").toString();
        assertThat(limit).as("the agent's memory limit").endsWith("Mi");
        // heap, metaspace and code are bounded by the flags; threads, GC and native libraries need the rest
        assertThat(Long.parseLong(limit.substring(0, limit.length() - 2)))
                .as("memory limit (Mi) vs -Xmx + MaxMetaspaceSize + ReservedCodeCacheSize (%s) + 64 MiB", sizes)
                .isGreaterThanOrEqualTo(bounded + 64);
    }

    @Test
    void theDockerBuildContextKeepsTheSourcesAndDropsHostBuildOutputs() {
        List<String> ignored = read(ROOT.resolve(".dockerignore"))
                .lines()
                .map(String::strip)
                .filter(l -> !l.isEmpty() && !l.startsWith("#"))
                .toList();
        assertThat(ignored)
                .as("host-built jars and libraries must not reach the build")
                .contains("**/target", "native/build");
        for (String needed :
                List.of("pom.xml", "mvnw", ".mvn", "native", "agent", "ib-vf-manager", "test-harness", "*", "**")) {
            assertThat(ignored).as("the build needs %s", needed).doesNotContain(needed, needed + "/", "/" + needed);
        }
        // Every Maven module the reactor lists must be in the context, or -pl agent -am cannot even start.
        String rootPom = read(ROOT.resolve("pom.xml"));
        Matcher modules = Pattern.compile("<module>([^<]+)</module>").matcher(rootPom);
        while (modules.find()) {
            assertThat(ignored).as("module %s", modules.group(1)).doesNotContain(modules.group(1));
        }
    }

    // ----------------------------------------------------------------------------------------------------------
    // Grafana dashboard and the metric list in docs/operations.md.

    @Test
    void theGrafanaDashboardQueriesOnlyTheAgentsMetricsAndShowsEachOfThem() throws IOException {
        JsonNode dashboard =
                JSON.readTree(DAEMONSET.resolve("grafana/omai-dashboard.json").toFile());
        assertThat(dashboard.path("schemaVersion").asInt()).isGreaterThanOrEqualTo(36);
        assertThat(dashboard.path("uid").asText()).isNotBlank();

        Map<String, JsonNode> variables = new LinkedHashMap<>();
        dashboard
                .path("templating")
                .path("list")
                .forEach(v -> variables.put(v.path("name").asText(), v));
        assertThat(variables).containsKeys("DS_PROMETHEUS", "node", "namespace", "tenant");
        assertThat(variables.get("DS_PROMETHEUS").path("type").asText()).isEqualTo("datasource");
        assertThat(variables.get("DS_PROMETHEUS").path("query").asText()).isEqualTo("prometheus");

        List<String> problems = new ArrayList<>();
        Set<String> used = new TreeSet<>();
        for (String name : List.of("node", "namespace", "tenant")) {
            JsonNode v = variables.get(name);
            String query = v.path("query").isObject()
                    ? v.path("query").path("query").asText()
                    : v.path("query").asText();
            String metric = PromQlNames.labelValuesMetric(query);
            if (metric == null || !METRICS.contains(metric)) {
                problems.add("variable " + name + ": query '" + query + "' does not read a known metric");
            }
            used.add(metric);
        }

        List<JsonNode> panels = new ArrayList<>();
        dashboard.path("panels").forEach(p -> {
            panels.add(p);
            p.path("panels").forEach(panels::add);
        });
        Set<Integer> ids = new TreeSet<>();
        for (JsonNode panel : panels) {
            String title = panel.path("title").asText();
            assertThat(ids.add(panel.path("id").asInt()))
                    .as("panel id of '%s' is unique", title)
                    .isTrue();
            JsonNode grid = panel.path("gridPos");
            assertThat(grid.path("x").asInt() + grid.path("w").asInt())
                    .as("'%s' fits 24 columns", title)
                    .isLessThanOrEqualTo(24);
            if (panel.path("type").asText().equals("row")) {
                continue;
            }
            assertThat(panel.path("datasource").path("uid").asText())
                    .as("'%s' datasource", title)
                    .isEqualTo("${DS_PROMETHEUS}");
            assertThat(panel.path("targets")).as("'%s' has queries", title).isNotEmpty();
            for (JsonNode target : panel.path("targets")) {
                String expr = target.path("expr").asText();
                Set<String> metrics = PromQlNames.metrics(expr);
                if (metrics.isEmpty()) {
                    problems.add("'" + title + "': expr selects no metric: " + expr);
                }
                for (String metric : metrics) {
                    String base = exportedMetric(metric);
                    if (base == null) {
                        problems.add("'" + title + "': " + metric + " is not a metric the agent exports: " + expr);
                    } else {
                        used.add(base);
                    }
                }
            }
        }
        assertThat(problems).isEmpty();
        assertThat(used)
                .as("every omai_ family has a panel")
                .containsAll(METRICS.stream().filter(m -> m.startsWith("omai_")).toList());
    }

    @Test
    void thePromQlNameExtractionSeesThroughFunctionsLabelsAndRanges() {
        assertThat(PromQlNames.metrics("histogram_quantile(0.99, sum by (le) (rate(omai_fit_duration_seconds_bucket"
                        + "{node=~\"$node\", le!=\"+Inf\"}[$__rate_interval])))"))
                .containsExactly("omai_fit_duration_seconds_bucket");
        assertThat(PromQlNames.metrics("count(up{job=\"x\"} == 0) or vector(0)"))
                .containsExactly("up");
        assertThat(PromQlNames.metrics("omai_audit_findings_total unless omai_audit_findings_total offset 15m"))
                .containsExactly("omai_audit_findings_total");
        assertThat(exportedMetric("omai_fit_duration_seconds_bucket")).isEqualTo("omai_fit_duration_seconds");
        assertThat(exportedMetric("omai_gpu_healthy_bucket"))
                .as("not a histogram")
                .isNull();
        assertThat(exportedMetric("up")).isNull();
    }

    // ----------------------------------------------------------------------------------------------------------
    // Allow-lists for kinds without a fabric8 model.

    private static final AllowList RELABEL = fields(
            "sourceLabels",
            listOf(SCALAR),
            "separator",
            SCALAR,
            "targetLabel",
            SCALAR,
            "regex",
            SCALAR,
            "modulus",
            SCALAR,
            "replacement",
            SCALAR,
            "action",
            SCALAR);
    private static final AllowList LABEL_SELECTOR = fields(
            "matchLabels",
            mapOf(SCALAR),
            "matchExpressions",
            listOf(fields("key", SCALAR, "operator", SCALAR, "values", listOf(SCALAR))));
    /** monitoring.coreos.com/v1 ServiceMonitor, the fields of its CRD this project may use (beyond metadata). */
    static final AllowList SERVICE_MONITOR = fields(
            "spec",
            fields(
                    "jobLabel", SCALAR,
                    "targetLabels", listOf(SCALAR),
                    "podTargetLabels", listOf(SCALAR),
                    "sampleLimit", SCALAR,
                    "selector", LABEL_SELECTOR,
                    "namespaceSelector", fields("any", SCALAR, "matchNames", listOf(SCALAR)),
                    "endpoints",
                            listOf(fields(
                                    "port",
                                    SCALAR,
                                    "targetPort",
                                    SCALAR,
                                    "path",
                                    SCALAR,
                                    "scheme",
                                    SCALAR,
                                    "params",
                                    mapOf(listOf(SCALAR)),
                                    "interval",
                                    SCALAR,
                                    "scrapeTimeout",
                                    SCALAR,
                                    "honorLabels",
                                    SCALAR,
                                    "honorTimestamps",
                                    SCALAR,
                                    "followRedirects",
                                    SCALAR,
                                    "enableHttp2",
                                    SCALAR,
                                    "filterRunning",
                                    SCALAR,
                                    "relabelings",
                                    listOf(RELABEL),
                                    "metricRelabelings",
                                    listOf(RELABEL)))));

    /** monitoring.coreos.com/v1 PrometheusRule: rule groups as Prometheus rule files have them. */
    static final AllowList PROMETHEUS_RULE = fields(
            "spec",
            fields(
                    "groups",
                    listOf(fields(
                            "name",
                            SCALAR,
                            "interval",
                            SCALAR,
                            "limit",
                            SCALAR,
                            "rules",
                            listOf(fields(
                                    "alert",
                                    SCALAR,
                                    "record",
                                    SCALAR,
                                    "expr",
                                    SCALAR,
                                    "for",
                                    SCALAR,
                                    "keep_firing_for",
                                    SCALAR,
                                    "labels",
                                    mapOf(SCALAR),
                                    "annotations",
                                    mapOf(SCALAR)))))));

    private static final AllowList PATCH = fields(
            "path",
            SCALAR,
            "patch",
            SCALAR,
            "target",
            fields(
                    "group",
                    SCALAR,
                    "version",
                    SCALAR,
                    "kind",
                    SCALAR,
                    "name",
                    SCALAR,
                    "namespace",
                    SCALAR,
                    "labelSelector",
                    SCALAR,
                    "annotationSelector",
                    SCALAR),
            "options",
            mapOf(SCALAR));
    /** kustomize.config.k8s.io Kustomization (v1beta1) and Component (v1alpha1): the fields used here. */
    static final AllowList KUSTOMIZATION = fields(
            "namespace", SCALAR,
            "resources", listOf(SCALAR),
            "components", listOf(SCALAR),
            "patches", listOf(PATCH),
            "images", listOf(fields("name", SCALAR, "newName", SCALAR, "newTag", SCALAR, "digest", SCALAR)),
            "labels", listOf(fields("pairs", mapOf(SCALAR), "includeSelectors", SCALAR, "includeTemplates", SCALAR)));

    private static AllowList allowListFor(GenericKubernetesResource r) {
        return switch (r.getApiVersion() + " " + r.getKind()) {
            case "monitoring.coreos.com/v1 ServiceMonitor" -> SERVICE_MONITOR;
            case "monitoring.coreos.com/v1 PrometheusRule" -> PROMETHEUS_RULE;
            case "kustomize.config.k8s.io/v1beta1 Kustomization", "kustomize.config.k8s.io/v1alpha1 Component" ->
                KUSTOMIZATION;
            default -> null;
        };
    }

    // ----------------------------------------------------------------------------------------------------------
    // Helpers.

    private static Path repositoryRoot() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isRegularFile(dir.resolve("daemonset/kustomization.yaml"))) {
                return dir;
            }
        }
        throw new IllegalStateException(
                "no daemonset/kustomization.yaml above " + Path.of("").toAbsolutePath());
    }

    private static List<Manifest> loadAll() {
        try (Stream<Path> files = Files.walk(DAEMONSET)) {
            List<Manifest> manifests = new ArrayList<>();
            for (Path file : files.filter(
                            f -> f.toString().endsWith(".yaml") || f.toString().endsWith(".yml"))
                    .sorted()
                    .toList()) {
                String name = DAEMONSET.relativize(file).toString();
                String text = read(file);
                // One object per file: kubectl would apply a second document, this test would not look at it.
                long documents = YAML.readValues(YAML.createParser(text), JsonNode.class).readAll().stream()
                        .filter(d -> d != null && !d.isNull() && !d.isMissingNode())
                        .count();
                if (documents != 1) {
                    throw new AssertionError(name + ": " + documents + " YAML documents; expected exactly one object");
                }
                Object parsed;
                try {
                    parsed = K8S.unmarshal(text);
                } catch (RuntimeException e) {
                    throw new AssertionError(
                            name + ": does not deserialize into the Kubernetes model: " + e.getMessage(), e);
                }
                if (!(parsed instanceof KubernetesResource resource)) {
                    throw new AssertionError(name + ": not a Kubernetes object: " + parsed);
                }
                manifests.add(new Manifest(name, resource));
            }
            return List.copyOf(manifests);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static boolean isKustomize(Manifest m) {
        return m.object() instanceof GenericKubernetesResource g
                && g.getApiVersion().startsWith("kustomize.config.k8s.io/");
    }

    /** The objects kubectl apply -k daemonset/ creates (without components). */
    private static List<Manifest> base() {
        return MANIFESTS.stream()
                .filter(m -> !m.name().contains("/") && !isKustomize(m))
                .toList();
    }

    private static <T extends KubernetesResource> T one(Class<T> type) {
        List<T> found = base().stream()
                .map(Manifest::object)
                .filter(type::isInstance)
                .map(type::cast)
                .toList();
        assertThat(found)
                .as("exactly one %s in daemonset/", type.getSimpleName())
                .hasSize(1);
        return found.getFirst();
    }

    private static GenericKubernetesResource generic(String kind) {
        List<GenericKubernetesResource> found = base().stream()
                .map(Manifest::object)
                .filter(o ->
                        o instanceof GenericKubernetesResource g && g.getKind().equals(kind))
                .map(GenericKubernetesResource.class::cast)
                .toList();
        assertThat(found).as("exactly one %s in daemonset/", kind).hasSize(1);
        return found.getFirst();
    }

    private static GenericKubernetesResource kustomization(String name) {
        return MANIFESTS.stream()
                .filter(m -> m.name().equals(name))
                .map(m -> (GenericKubernetesResource) m.object())
                .findFirst()
                .orElseThrow(() -> new AssertionError("no " + name));
    }

    private static DaemonSet daemonSet() {
        return one(DaemonSet.class);
    }

    private static Container agentContainer() {
        return daemonSet().getSpec().getTemplate().getSpec().getContainers().stream()
                .filter(c -> c.getName().equals("omai-agent"))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no omai-agent container"));
    }

    private static List<Container> allContainers(PodSpec pod) {
        List<Container> all = new ArrayList<>(pod.getInitContainers());
        all.addAll(pod.getContainers());
        return all;
    }

    private static Volume volume(String name) {
        return daemonSet().getSpec().getTemplate().getSpec().getVolumes().stream()
                .filter(v -> v.getName().equals(name))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no volume " + name));
    }

    private static Optional<VolumeMount> mountAt(Container c, String path) {
        return c.getVolumeMounts().stream()
                .filter(m -> m.getMountPath().equals(path))
                .findFirst();
    }

    /** {@code hostDir} is a hostPath volume mounted at the very same path in {@code c}. */
    private static void assertIdentityMount(Container c, Path hostDir, boolean readOnlyAllowed) {
        VolumeMount mount = mountAt(c, hostDir.toString())
                .orElseThrow(() -> new AssertionError(c.getName() + " has nothing mounted at " + hostDir));
        Volume v = volume(mount.getName());
        assertThat(v.getHostPath()).as("%s is a hostPath volume", v.getName()).isNotNull();
        assertThat(v.getHostPath().getPath()).as("host path of %s", v.getName()).isEqualTo(hostDir.toString());
        if (!readOnlyAllowed) {
            assertThat(mount.getReadOnly())
                    .as("%s writes %s", c.getName(), hostDir)
                    .isNotEqualTo(true);
        }
    }

    private static AgentConfig shippedConfig() throws ConfigException {
        return ConfigLoader.parse("daemonset/configmap.yaml config.yaml", configText());
    }

    private static String configText() {
        String text = one(ConfigMap.class).getData().get("config.yaml");
        assertThat(text).as("ConfigMap key config.yaml").isNotBlank();
        return text;
    }

    /** The exported metric {@code series} belongs to (a histogram's _bucket/_sum/_count included), or null. */
    private static String exportedMetric(String series) {
        if (METRICS.contains(series)) {
            return series;
        }
        for (String suffix : List.of("_bucket", "_sum", "_count")) {
            if (series.endsWith(suffix)) {
                String base = series.substring(0, series.length() - suffix.length());
                if (HISTOGRAMS.contains(base)) {
                    return base;
                }
            }
        }
        return null;
    }

    private static List<String> fieldNames(JsonNode node) {
        List<String> names = new ArrayList<>();
        node.fieldNames().forEachRemaining(names::add);
        return names;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object value) {
        assertThat(value).isInstanceOf(Map.class);
        return (Map<String, Object>) value;
    }

    private static Map<String, String> stringMap(Map<String, Object> value) {
        Map<String, String> result = new LinkedHashMap<>();
        value.forEach((k, v) -> result.put(k, String.valueOf(v)));
        return result;
    }

    private static List<Map<String, Object>> maps(Object value) {
        assertThat(value).isInstanceOf(List.class);
        return ((List<?>) value).stream().map(ManifestsTest::map).toList();
    }

    private static List<String> strings(Object value) {
        assertThat(value).isInstanceOf(List.class);
        return ((List<?>) value).stream().map(String::valueOf).toList();
    }

    private static String read(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
