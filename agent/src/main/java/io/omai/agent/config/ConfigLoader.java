package io.omai.agent.config;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.MissingNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Reads the agent's YAML configuration file. Every key is checked: an unknown key, a value of the wrong type or
 * outside its range is refused with the key, the value and what was expected, so a typo never silently falls
 * back to a default. Absent keys take the defaults listed in {@code docs/operations.md}.
 */
public final class ConfigLoader {
    public static final Path DEFAULT_DEVICE_PLUGIN_DIR = Path.of("/var/lib/kubelet/device-plugins");
    public static final Path DEFAULT_POD_RESOURCES_SOCKET = Path.of("/var/lib/kubelet/pod-resources/kubelet.sock");
    public static final Path DEFAULT_STATE_DIR = Path.of("/var/lib/omai");
    public static final Path DEFAULT_SHIM_LIBRARY = Path.of("/usr/local/omai/lib/libomai-shim.so");
    public static final Set<Long> DEFAULT_IGNORED_XIDS = Set.of(13L, 31L, 43L, 45L, 68L, 109L);

    // Extended resource names: a DNS-subdomain prefix and a name, as kubelet's Register checks.
    static final String DEFAULT_RESERVE_CALLER = "system:serviceaccount:omai-system:omai-scheduler-extender";
    private static final Pattern RESOURCE_NAME = Pattern.compile(
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?");
    private static final Pattern CDI_KIND =
            Pattern.compile("[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-zA-Z0-9][-a-zA-Z0-9_.]*");
    private static final Pattern DURATION = Pattern.compile("(\\d+)(ms|s|m|h)");
    private static final Pattern LABEL_KEY =
            Pattern.compile("([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                    + "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?");
    private static final Pattern DRIVER_NAME =
            Pattern.compile("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+");
    private static final Pattern DEVICE_CLASS_VALUE = Pattern.compile("[A-Za-z0-9._-]{1,64}");
    private static final long MIB = 1L << 20;
    private static final Pattern NODE_NAME = Pattern.compile("[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?");

    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    // NVML reports an XID as an unsigned 32-bit event datum.
    private static final long MAX_XID = 0xFFFF_FFFFL;

    private final String source;
    /** Each mapping read (dotted path, "" for the top) and the keys it accepts: the source of {@link #keys()}. */
    private final Map<String, List<String>> sectionKeys = new java.util.LinkedHashMap<>();

    private ConfigLoader(String source) {
        this.source = source;
    }

    /** Reads and validates a configuration file. */
    public static AgentConfig load(Path file) throws ConfigException {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new ConfigException(file.toString(), "", "cannot be read (" + e + "); expected a YAML file");
        }
        return parse(file.toString(), text);
    }

    /** Validates configuration text; {@code source} names it in errors. */
    public static AgentConfig parse(String source, String yaml) throws ConfigException {
        ConfigLoader loader = new ConfigLoader(source);
        JsonNode root;
        try {
            root = YAML.readTree(yaml);
        } catch (JacksonException e) {
            throw new ConfigException(
                    source,
                    "",
                    "is not valid YAML: " + e.getOriginalMessage()
                            + (e.getLocation() == null
                                    ? ""
                                    : " at line " + e.getLocation().getLineNr()));
        }
        if (root == null || root.isMissingNode() || root.isNull()) {
            throw new ConfigException(
                    source,
                    "version",
                    "is missing; expected 'version: " + AgentConfig.VERSION + "' at the top of the file");
        }
        DuplicateKeys.refuse(source, YAML.getFactory(), yaml);
        return loader.read(root);
    }

    /** The configuration an empty file (only {@code version: 1}) gives. */
    public static AgentConfig defaults() {
        try {
            return parse("<defaults>", "version: " + AgentConfig.VERSION);
        } catch (ConfigException e) {
            throw new AssertionError(e);
        }
    }

    /**
     * Every key the file may hold, dotted ({@code sharing.cdi.kind}), in the order the loader reads them; a mapping
     * that only groups keys ({@code sharing.cdi}) is not listed, a list of rules ({@code schedulerApi.deviceLabels})
     * is one key. docs/operations.md's configuration reference is checked against this list.
     */
    public static List<String> keys() {
        ConfigLoader loader = new ConfigLoader("<keys>");
        try {
            loader.read(YAML.readTree("version: " + AgentConfig.VERSION));
        } catch (ConfigException | JacksonException e) {
            throw new AssertionError(e);
        }
        List<String> keys = new ArrayList<>();
        loader.sectionKeys.forEach((path, allowed) -> {
            for (String key : allowed) {
                String dotted = path.isEmpty() ? key : path + "." + key;
                if (!loader.sectionKeys.containsKey(dotted)) {
                    keys.add(dotted);
                }
            }
        });
        return keys;
    }

    /** Replaces the main directories, as the {@code run} command's flags do; null keeps the configured one. */
    public static AgentConfig withDirectories(
            AgentConfig config, Path devicePluginDir, Path podResourcesSocket, Path stateDir) {
        AgentConfig.Directories d = config.directories();
        AgentConfig.Directories replaced = new AgentConfig.Directories(
                devicePluginDir == null ? d.devicePlugin() : devicePluginDir.toAbsolutePath(),
                podResourcesSocket == null ? d.podResourcesSocket() : podResourcesSocket.toAbsolutePath(),
                stateDir == null ? d.state() : stateDir.toAbsolutePath(),
                d.devRoot());
        return new AgentConfig(
                config.nodeName(),
                config.resources(),
                replaced,
                config.sharing(),
                config.shim(),
                config.nvml(),
                config.kubelet(),
                config.metrics(),
                config.tenancy(),
                config.schedulerApi(),
                config.ib(),
                config.audit(),
                config.dra());
    }

    private AgentConfig read(JsonNode root) throws ConfigException {
        Section top = new Section(
                "",
                root,
                "version",
                "nodeName",
                "resources",
                "directories",
                "sharing",
                "shim",
                "nvml",
                "kubelet",
                "metrics",
                "tenancy",
                "schedulerApi",
                "ib",
                "audit",
                "dra");
        JsonNode version = top.node("version");
        if (version.isMissingNode()) {
            throw error("version", "is missing; expected 'version: " + AgentConfig.VERSION + "'");
        }
        if (!version.isInt() || version.intValue() != AgentConfig.VERSION) {
            throw error("version", "'" + version.asText() + "' is not supported; expected " + AgentConfig.VERSION);
        }
        String nodeName = top.string("nodeName", null);
        if (nodeName == null) {
            nodeName = defaultNodeName();
        } else if (!NODE_NAME.matcher(nodeName).matches()) {
            throw error("nodeName", "'" + nodeName + "' is not a node name; expected a lower-case DNS subdomain");
        }

        Section resources = top.section("resources", "milliGpu");
        String milliGpu = resources.string("milliGpu", "omai.io/milli-gpu");
        if (!RESOURCE_NAME.matcher(milliGpu).matches() || milliGpu.startsWith("kubernetes.io/")) {
            throw error(
                    "resources.milliGpu",
                    "'" + milliGpu + "' is not an extended resource name; expected "
                            + "<domain>/<name> outside kubernetes.io, e.g. omai.io/milli-gpu");
        }
        if (milliGpu.startsWith("nvidia.com/")) {
            throw error(
                    "resources.milliGpu",
                    "'" + milliGpu + "' would hijack NVIDIA's device plugin (kubelet "
                            + "keeps the newest registration per name); expected a name in your own domain");
        }

        Section dirs = top.section("directories", "devicePlugin", "podResourcesSocket", "state", "devRoot");
        AgentConfig.Directories directories = new AgentConfig.Directories(
                dirs.absolutePath("devicePlugin", DEFAULT_DEVICE_PLUGIN_DIR),
                dirs.absolutePath("podResourcesSocket", DEFAULT_POD_RESOURCES_SOCKET),
                dirs.absolutePath("state", DEFAULT_STATE_DIR),
                dirs.absolutePath("devRoot", Path.of("/dev")));

        Section sharing =
                top.section("sharing", "memoryPolicy", "computeMode", "computeEnforced", "computePeriod", "cdi");
        AgentConfig.MemoryPolicy memoryPolicy = switch (sharing.string("memoryPolicy", "proportional")) {
            case "proportional" -> AgentConfig.MemoryPolicy.PROPORTIONAL;
            case "unlimited" -> AgentConfig.MemoryPolicy.UNLIMITED;
            case String other ->
                throw error("sharing.memoryPolicy", "'" + other + "' is unknown; expected proportional or unlimited");
        };
        AgentConfig.ComputePolicy computeMode = switch (sharing.string("computeMode", "hard-cap")) {
            case "hard-cap" -> AgentConfig.ComputePolicy.HARD_CAP;
            case "work-conserving" -> AgentConfig.ComputePolicy.WORK_CONSERVING;
            case String other ->
                throw error("sharing.computeMode", "'" + other + "' is unknown; expected hard-cap or work-conserving");
        };
        boolean computeEnforced = sharing.bool("computeEnforced", true);
        Duration period =
                sharing.duration("computePeriod", Duration.ofMillis(100), Duration.ofMillis(1), Duration.ofSeconds(10));
        Section cdi = sharing.section("cdi", "enabled", "kind");
        boolean cdiEnabled = cdi.bool("enabled", false);
        String cdiKind = cdi.string("kind", "nvidia.com/gpu");
        if (!CDI_KIND.matcher(cdiKind).matches()) {
            throw error("sharing.cdi.kind", "'" + cdiKind + "' is not a CDI kind; expected vendor.com/class");
        }

        Section shim = top.section("shim", "hostLibrary", "containerLibrary", "preloadFileMount");
        AgentConfig.Shim shimConfig = new AgentConfig.Shim(
                shim.absolutePath("hostLibrary", DEFAULT_SHIM_LIBRARY),
                shim.absolutePath("containerLibrary", DEFAULT_SHIM_LIBRARY),
                shim.bool("preloadFileMount", true));

        Section nvml = top.section("nvml", "library", "healthChecks", "recoveryDebounce", "ignoredXids");
        String library = nvml.string("library", "libnvidia-ml.so.1");
        if (library.isBlank()) {
            throw error("nvml.library", "is empty; expected libnvidia-ml.so.1 or a path to it");
        }
        Duration debounce =
                nvml.duration("recoveryDebounce", Duration.ofSeconds(30), Duration.ZERO, Duration.ofHours(1));
        Set<Long> ignoredXids = nvml.longSet("ignoredXids", DEFAULT_IGNORED_XIDS);

        Section kubelet = top.section("kubelet", "registrationBackoffMax", "reconcileInterval", "releaseGracePeriod");
        Duration backoffMax = kubelet.duration(
                "registrationBackoffMax", Duration.ofSeconds(5), Duration.ofMillis(100), Duration.ofMinutes(5));
        Duration reconcileInterval = kubelet.duration(
                "reconcileInterval", Duration.ofSeconds(30), Duration.ofMillis(100), Duration.ofHours(1));
        Duration grace =
                kubelet.duration("releaseGracePeriod", Duration.ofSeconds(60), Duration.ZERO, Duration.ofDays(1));

        Section metrics = top.section("metrics", "address", "port");
        String metricsAddress = metrics.string("address", "0.0.0.0");
        try {
            InetAddress.ofLiteral(metricsAddress); // a literal only: binding must not depend on DNS at start
        } catch (IllegalArgumentException e) {
            throw error(
                    "metrics.address",
                    "'" + metricsAddress + "' is not an IP address; expected e.g. 0.0.0.0 "
                            + "(every interface), 127.0.0.1 or ::");
        }
        JsonNode metricsPort = metrics.node("port");
        if (!metricsPort.isMissingNode()
                && !metricsPort.isNull()
                && (!metricsPort.isInt() || metricsPort.intValue() < 1 || metricsPort.intValue() > 65535)) {
            throw error(
                    "metrics.port",
                    "'" + metricsPort.asText() + "' is not a TCP port; expected a whole number "
                            + "1..65535 (the DaemonSet's 'metrics' containerPort, 9400)");
        }

        return new AgentConfig(
                nodeName,
                new AgentConfig.Resources(milliGpu),
                directories,
                new AgentConfig.Sharing(
                        memoryPolicy,
                        computeMode,
                        computeEnforced,
                        Math.toIntExact(period.toNanos() / 1_000),
                        cdiEnabled,
                        cdiKind),
                shimConfig,
                new AgentConfig.Nvml(library, nvml.bool("healthChecks", true), debounce, ignoredXids),
                new AgentConfig.Kubelet(backoffMax, reconcileInterval, grace),
                new AgentConfig.Metrics(metricsAddress, metricsPort.isInt() ? metricsPort.intValue() : 9400),
                tenancy(
                        top.section(
                                "tenancy",
                                "policy",
                                "tenantLabel",
                                "kubernetesApi",
                                "identifyWait",
                                "gpus",
                                "otherGpuResource",
                                "audit",
                                "auditInterval"),
                        milliGpu),
                schedulerApi(top.section(
                        "schedulerApi",
                        "enabled",
                        "address",
                        "port",
                        "tls",
                        "allowedClients",
                        "deviceLabels",
                        "reserveAuth",
                        "reserveCallers",
                        "tokenAudience",
                        "tokenCacheTtl")),
                readIb(top, milliGpu),
                audit(top.section("audit", "onTamper")),
                dra(top.section(
                        "dra",
                        "enabled",
                        "driverName",
                        "pluginsRegistryDir",
                        "pluginDir",
                        "cdiDir",
                        "deviceClass",
                        "memoryMinimum",
                        "memoryStep",
                        "sliceUpdateDebounce")));
    }

    /** The {@code dra:} section: the DRA kubelet plugin, off by default. */
    private AgentConfig.Dra dra(Section dra) throws ConfigException {
        boolean enabled = dra.bool("enabled", false);
        String driver = dra.string("driverName", "gpu.omai.io");
        // a DNS subdomain of at least two labels: ResourceSlice.spec.driver and the CDI vendor both require it
        if (!DRIVER_NAME.matcher(driver).matches() || driver.length() > 63) {
            throw error(
                    "dra.driverName",
                    "'" + driver + "' is not a DRA driver name; expected a lower-case DNS subdomain of at most 63 "
                            + "characters with a dot, e.g. gpu.omai.io");
        }
        String deviceClass = dra.string("deviceClass", "omai-gpu");
        if (!DEVICE_CLASS_VALUE.matcher(deviceClass).matches()) {
            throw error(
                    "dra.deviceClass",
                    "'" + deviceClass + "' is not a device attribute value; expected 1..64 characters of "
                            + "[A-Za-z0-9._-], e.g. omai-gpu");
        }
        long step = dra.bytes("memoryStep", MIB, 1, 1L << 30);
        long minimum = dra.bytes("memoryMinimum", 256 * MIB, step, 1L << 40);
        if (minimum % step != 0) {
            throw error(
                    "dra.memoryMinimum",
                    minimum + " bytes is not a multiple of dra.memoryStep (" + step + " bytes); expected e.g. 256Mi");
        }
        return new AgentConfig.Dra(
                enabled,
                driver,
                dra.absolutePath("pluginsRegistryDir", Path.of("/var/lib/kubelet/plugins_registry")),
                dra.absolutePath(
                        "pluginDir", Path.of("/var/lib/kubelet/plugins").resolve(driver)),
                dra.absolutePath("cdiDir", Path.of("/var/run/cdi")),
                deviceClass,
                minimum,
                step,
                dra.duration("sliceUpdateDebounce", Duration.ofMillis(500), Duration.ZERO, Duration.ofMinutes(1)));
    }

    /** The {@code audit:} section (the NVML audit's own switch stays {@code tenancy.audit}). */
    private AgentConfig.Audit audit(Section audit) throws ConfigException {
        AgentConfig.TamperAction onTamper = switch (audit.string("onTamper", "freeze")) {
            case "report" -> AgentConfig.TamperAction.REPORT;
            case "freeze" -> AgentConfig.TamperAction.FREEZE;
            case "kill" -> AgentConfig.TamperAction.KILL;
            case String value ->
                throw error(
                        "audit.onTamper",
                        "'" + value + "' is unknown; expected report (event,"
                                + " metric and log line only), freeze (no more memory or GPU time for the allocation) or kill"
                                + " (SIGKILL its processes)");
        };
        return new AgentConfig.Audit(onTamper);
    }

    private AgentConfig.SchedulerApi schedulerApi(Section api) throws ConfigException {
        boolean enabled = api.bool("enabled", true);
        String address = api.string("address", "0.0.0.0");
        try {
            InetAddress.ofLiteral(address);
        } catch (IllegalArgumentException e) {
            throw error("schedulerApi.address", "'" + address + "' is not an IP address; expected e.g. 0.0.0.0");
        }
        JsonNode port = api.node("port");
        if (!port.isMissingNode()
                && !port.isNull()
                && (!port.isInt() || port.intValue() < 1 || port.intValue() > 65535)) {
            throw error(
                    "schedulerApi.port",
                    "'" + port.asText() + "' is not a TCP port; expected a whole number "
                            + "1..65535 (the DaemonSet's 'sched-api' containerPort, 9401)");
        }
        Section tlsSection = api.section("tls", "certificateChain", "privateKey", "clientCa");
        Path chain = tlsSection.absolutePath("certificateChain", null);
        Path key = tlsSection.absolutePath("privateKey", null);
        Path ca = tlsSection.absolutePath("clientCa", null);
        AgentConfig.Tls tls = null;
        if (chain != null || key != null || ca != null) {
            if (chain == null || key == null || ca == null) {
                throw error(
                        "schedulerApi.tls",
                        "names " + (chain == null ? "" : "certificateChain ")
                                + (key == null ? "" : "privateKey ") + (ca == null ? "" : "clientCa ")
                                + "only; expected all three of certificateChain, privateKey and clientCa (mutual TLS)");
            }
            tls = new AgentConfig.Tls(chain, key, ca);
        }
        Set<String> clients = new LinkedHashSet<>();
        JsonNode allowed = api.node("allowedClients");
        if (!allowed.isMissingNode() && !allowed.isNull()) {
            if (!allowed.isArray()) {
                throw error(
                        "schedulerApi.allowedClients",
                        "is " + describe(allowed)
                                + "; expected a list of certificate identities, e.g. [omai-scheduler]");
            }
            for (JsonNode client : allowed) {
                if (!client.isTextual() || client.textValue().isBlank()) {
                    throw error(
                            "schedulerApi.allowedClients",
                            "has " + describe(client)
                                    + "; expected non-empty certificate identities (CN, DNS or URI SAN)");
                }
                clients.add(client.textValue());
            }
        }
        if (tls == null && !clients.isEmpty()) {
            throw error(
                    "schedulerApi.allowedClients",
                    "names clients but schedulerApi.tls is not set; identities "
                            + "come from client certificates, so mutual TLS is required");
        }
        if (tls != null && clients.isEmpty()) {
            throw error(
                    "schedulerApi.allowedClients",
                    "is empty; with TLS, name the identities allowed to Reserve "
                            + "and Release, e.g. [omai-scheduler]");
        }
        AgentConfig.ReserveAuth reserveAuth = switch (api.string("reserveAuth", "tokenReview")) {
            case "tokenReview" -> AgentConfig.ReserveAuth.TOKEN_REVIEW;
            case "mtls" -> AgentConfig.ReserveAuth.MTLS;
            case "none" -> AgentConfig.ReserveAuth.NONE;
            case String other ->
                throw error(
                        "schedulerApi.reserveAuth",
                        "'" + other + "' is unknown; expected tokenReview (a service-account token checked with a "
                                + "TokenReview, or a client certificate when tls is set), mtls (client "
                                + "certificates only) or none (anyone who reaches the port may Reserve)");
        };
        if (reserveAuth == AgentConfig.ReserveAuth.MTLS && tls == null) {
            throw error(
                    "schedulerApi.reserveAuth",
                    "is mtls but schedulerApi.tls is not set; expected tls with certificateChain, privateKey and "
                            + "clientCa, or reserveAuth: tokenReview");
        }
        Set<String> callers = new LinkedHashSet<>();
        JsonNode callerList = api.node("reserveCallers");
        if (!callerList.isMissingNode() && !callerList.isNull()) {
            if (!callerList.isArray()) {
                throw error(
                        "schedulerApi.reserveCallers",
                        "is " + describe(callerList) + "; expected a list of user names or groups, e.g. "
                                + "[system:serviceaccount:omai-system:omai-scheduler-extender]");
            }
            for (JsonNode caller : callerList) {
                if (!caller.isTextual() || caller.textValue().isBlank()) {
                    throw error(
                            "schedulerApi.reserveCallers",
                            "has " + describe(caller) + "; expected non-empty user names or groups");
                }
                callers.add(caller.textValue());
            }
        }
        if (callerList.isMissingNode() || callerList.isNull()) {
            callers.add(DEFAULT_RESERVE_CALLER);
        }
        if (reserveAuth == AgentConfig.ReserveAuth.TOKEN_REVIEW && callers.isEmpty()) {
            throw error(
                    "schedulerApi.reserveCallers",
                    "is empty but reserveAuth is tokenReview; expected the scheduler's service account, e.g. "
                            + DEFAULT_RESERVE_CALLER);
        }
        String audience = api.string("tokenAudience", "omai-node-agent");
        if (audience.isBlank() || audience.length() > 253) {
            throw error(
                    "schedulerApi.tokenAudience",
                    "'" + audience + "' is not an audience; expected the audience the scheduler's projected token "
                            + "is issued for, e.g. omai-node-agent");
        }
        Duration tokenCacheTtl =
                api.duration("tokenCacheTtl", Duration.ofSeconds(30), Duration.ofSeconds(1), Duration.ofMinutes(10));
        return new AgentConfig.SchedulerApi(
                enabled,
                address,
                port.isInt() ? port.intValue() : 9401,
                tls,
                clients,
                deviceLabels(api.node("deviceLabels")),
                reserveAuth,
                callers,
                audience,
                tokenCacheTtl);
    }

    private List<AgentConfig.DeviceLabels> deviceLabels(JsonNode list) throws ConfigException {
        List<AgentConfig.DeviceLabels> rules = new ArrayList<>();
        if (list.isMissingNode() || list.isNull()) {
            return rules;
        }
        if (!list.isArray()) {
            throw error(
                    "schedulerApi.deviceLabels",
                    "is " + describe(list)
                            + "; expected a list of {select: {model|uuid|index: ...} or all, attributes: {...}, tags: [...]}");
        }
        for (int i = 0; i < list.size(); i++) {
            String path = "schedulerApi.deviceLabels[" + i + "]";
            Section rule = new Section(path, list.get(i), "select", "attributes", "tags");
            JsonNode select = rule.node("select");
            String kind;
            String value = "";
            if (select.isTextual() && select.textValue().equals("all")) {
                kind = "all";
            } else if (select.isObject() && select.size() == 1) {
                kind = select.fieldNames().next();
                JsonNode v = select.get(kind);
                if (!List.of("model", "uuid", "index").contains(kind)) {
                    throw error(path + ".select", "selects by '" + kind + "'; expected model, uuid, index or all");
                }
                if (kind.equals("index")
                        ? !whole(v, 0, 1023)
                        : !v.isTextual() || v.textValue().isBlank()) {
                    throw error(
                            path + ".select." + kind,
                            "is " + describe(v) + "; expected "
                                    + (kind.equals("index") ? "a GPU index 0..1023" : "a non-empty string"));
                }
                value = v.asText();
            } else {
                throw error(
                        path + ".select",
                        "is " + describe(select)
                                + "; expected 'all' or one of {model: ...}, {uuid: ...}, {index: ...}");
            }
            Map<String, String> attributes = new java.util.LinkedHashMap<>();
            JsonNode attrs = rule.node("attributes");
            if (!attrs.isMissingNode() && !attrs.isNull()) {
                if (!attrs.isObject()) {
                    throw error(path + ".attributes", "is " + describe(attrs) + "; expected a mapping of strings");
                }
                for (Iterator<Map.Entry<String, JsonNode>> it =
                                attrs.properties().iterator();
                        it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    if (!e.getValue().isValueNode() || e.getValue().isNull()) {
                        throw error(
                                path + ".attributes." + e.getKey(),
                                "is " + describe(e.getValue()) + "; expected a string, number or boolean");
                    }
                    attributes.put(e.getKey(), e.getValue().asText());
                }
            }
            Set<String> tags = new LinkedHashSet<>();
            JsonNode tagList = rule.node("tags");
            if (!tagList.isMissingNode() && !tagList.isNull()) {
                if (!tagList.isArray()) {
                    throw error(path + ".tags", "is " + describe(tagList) + "; expected a list of strings");
                }
                for (JsonNode tag : tagList) {
                    if (!tag.isTextual() || tag.textValue().isBlank()) {
                        throw error(path + ".tags", "has " + describe(tag) + "; expected non-empty strings");
                    }
                    tags.add(tag.textValue());
                }
            }
            rules.add(new AgentConfig.DeviceLabels(kind, value, attributes, tags));
        }
        return rules;
    }

    private AgentConfig.Ib readIb(Section top, String milliGpu) throws ConfigException {
        Section ib = top.section(
                "ib",
                "enabled",
                "resourceName",
                "sysfsRoot",
                "guidRange",
                "desiredVfs",
                "vfLinkState",
                "pollInterval",
                "rebindLock",
                "resources");
        boolean enabled = ib.bool("enabled", false);
        String resourceName = ib.string("resourceName", "omai.io/ib-vf");
        if (!RESOURCE_NAME.matcher(resourceName).matches()
                || resourceName.startsWith("kubernetes.io/")
                || resourceName.startsWith("nvidia.com/")) {
            throw error(
                    "ib.resourceName",
                    "'" + resourceName + "' is not an extended resource name of your own; "
                            + "expected <domain>/<name> outside kubernetes.io and nvidia.com, e.g. omai.io/ib-vf");
        }
        if (resourceName.equals(milliGpu)) {
            throw error(
                    "ib.resourceName",
                    "'" + resourceName + "' is also resources.milliGpu; expected a name of "
                            + "its own (kubelet keeps one plugin per name)");
        }
        Path sysfsRoot = ib.absolutePath("sysfsRoot", Path.of("/sys"));
        String rangeText = ib.string("guidRange", "");
        java.util.Optional<io.omai.ibvf.guid.GuidRange> guidRange = java.util.Optional.empty();
        if (!rangeText.isBlank()) {
            try {
                guidRange = java.util.Optional.of(io.omai.ibvf.guid.GuidRange.parse(rangeText.strip()));
            } catch (IllegalArgumentException e) {
                throw error("ib.guidRange", e.getMessage());
            }
        } else if (enabled) {
            throw error(
                    "ib.guidRange",
                    "is empty but ib.enabled is true; expected this node's own block of VF "
                            + "GUIDs, e.g. 02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff");
        }
        java.util.Map<io.omai.ibvf.model.PciAddress, Integer> desiredByPf = new java.util.TreeMap<>();
        java.util.OptionalInt desiredEveryPf = java.util.OptionalInt.empty();
        JsonNode desired = ib.node("desiredVfs");
        if (desired.isIntegralNumber()) {
            desiredEveryPf = java.util.OptionalInt.of(vfCount("ib.desiredVfs", desired));
        } else if (desired.isObject()) {
            Iterator<Map.Entry<String, JsonNode>> entries = desired.properties().iterator();
            while (entries.hasNext()) {
                Map.Entry<String, JsonNode> entry = entries.next();
                String key = "ib.desiredVfs." + entry.getKey();
                if (!io.omai.ibvf.model.PciAddress.isPciAddress(entry.getKey())) {
                    throw error(
                            key,
                            "'" + entry.getKey() + "' is not a PF PCI address; expected the form "
                                    + "0000:3b:00.0 (lower-case hex, as in /sys/bus/pci/devices)");
                }
                desiredByPf.put(io.omai.ibvf.model.PciAddress.of(entry.getKey()), vfCount(key, entry.getValue()));
            }
        } else if (!desired.isMissingNode() && !desired.isNull()) {
            throw error(
                    "ib.desiredVfs",
                    "is " + describe(desired) + "; expected a VF count for every PF (e.g. 8) "
                            + "or a mapping of PF PCI address to count (e.g. {\"0000:3b:00.0\": 8})");
        }
        io.omai.ibvf.kernel.VfLinkState linkState = switch (ib.string("vfLinkState", "auto")) {
            case "auto" -> io.omai.ibvf.kernel.VfLinkState.AUTO;
            case "enable" -> io.omai.ibvf.kernel.VfLinkState.ENABLE;
            case String other ->
                throw error(
                        "ib.vfLinkState",
                        "'" + other + "' is unknown; expected auto (the " + "VF port follows the PF port) or enable");
        };
        Duration pollInterval =
                ib.duration("pollInterval", Duration.ofSeconds(5), Duration.ofMillis(100), Duration.ofHours(1));
        return new AgentConfig.Ib(
                enabled,
                resourceName,
                sysfsRoot,
                guidRange,
                desiredByPf,
                desiredEveryPf,
                linkState,
                pollInterval,
                ib.absolutePath("rebindLock", Path.of("/run/omai/ib-vf-rebind.lock")),
                vfResources(ib, resourceName, milliGpu));
    }

    /**
     * {@code ib.resources}: the VF resources and their PF selectors; absent, one resource {@code ib.resourceName}
     * offering InfiniBand PFs only. Two resources that could select the same PF are refused: a VF offered twice
     * could be handed to two pods.
     */
    private List<AgentConfig.VfResource> vfResources(Section ib, String resourceName, String milliGpu)
            throws ConfigException {
        JsonNode list = ib.node("resources");
        if (list.isMissingNode() || list.isNull()) {
            return List.of(AgentConfig.VfResource.infiniband(resourceName));
        }
        if (!ib.node("resourceName").isMissingNode()) {
            throw error(
                    "ib.resourceName",
                    "is set together with ib.resources; expected one of them (name every resource in "
                            + "ib.resources)");
        }
        if (!list.isArray() || list.isEmpty()) {
            throw error(
                    "ib.resources",
                    "is " + describe(list) + "; expected a non-empty list of {name, linkTypes, vendors, devices, "
                            + "pfNames}, e.g. [{name: omai.io/ib-vf, linkTypes: [infiniband]}]");
        }
        List<AgentConfig.VfResource> resources = new ArrayList<>();
        for (int i = 0; i < list.size(); i++) {
            String path = "ib.resources[" + i + "]";
            Section entry = new Section(path, list.get(i), "name", "linkTypes", "vendors", "devices", "pfNames");
            String name = entry.string("name", "");
            if (!RESOURCE_NAME.matcher(name).matches()
                    || name.startsWith("kubernetes.io/")
                    || name.startsWith("nvidia.com/")) {
                throw error(
                        path + ".name",
                        "'" + name + "' is not an extended resource name of your own; expected <domain>/<name> "
                                + "outside kubernetes.io and nvidia.com, e.g. omai.io/roce-vf");
            }
            if (name.equals(milliGpu)) {
                throw error(path + ".name", "'" + name + "' is also resources.milliGpu; expected a name of its own");
            }
            for (AgentConfig.VfResource earlier : resources) {
                if (earlier.name().equals(name)) {
                    throw error(path + ".name", "'" + name + "' is named twice; expected one entry per resource");
                }
            }
            Set<io.omai.ibvf.model.LinkLayer> linkTypes = new LinkedHashSet<>();
            for (String type : strings(entry.node("linkTypes"), path + ".linkTypes", "infiniband or ethernet")) {
                linkTypes.add(
                        switch (type) {
                            case "infiniband" -> io.omai.ibvf.model.LinkLayer.INFINIBAND;
                            case "ethernet" -> io.omai.ibvf.model.LinkLayer.ETHERNET;
                            default ->
                                throw error(
                                        path + ".linkTypes",
                                        "has '" + type + "'; expected infiniband or ethernet (RoCE)");
                        });
            }
            Set<String> vendors = pciIds(entry.node("vendors"), path + ".vendors", "15b3");
            Set<String> devices = pciIds(entry.node("devices"), path + ".devices", "101b");
            Set<String> pfNames = new LinkedHashSet<>(
                    strings(entry.node("pfNames"), path + ".pfNames", "a netdev or RDMA device name"));
            if (linkTypes.isEmpty() && vendors.isEmpty() && devices.isEmpty() && pfNames.isEmpty()) {
                throw error(
                        path, "selects every RDMA PF; expected at least one of linkTypes, vendors, devices or pfNames");
            }
            var resource = new AgentConfig.VfResource(name, linkTypes, vendors, devices, pfNames);
            for (AgentConfig.VfResource earlier : resources) {
                if (mayOverlap(earlier, resource)) {
                    throw error(
                            path,
                            "'" + name + "' and '" + earlier.name() + "' could select the same PF (their linkTypes, "
                                    + "vendors, devices and pfNames all overlap or are unset); expected selectors "
                                    + "that differ in at least one of them, so no VF is offered twice");
                }
            }
            resources.add(resource);
        }
        return resources;
    }

    /** Whether some PF could satisfy both selectors: every dimension is unset on one side or shares a value. */
    private static boolean mayOverlap(AgentConfig.VfResource a, AgentConfig.VfResource b) {
        return intersects(a.linkTypes(), b.linkTypes())
                && intersects(a.vendors(), b.vendors())
                && intersects(a.devices(), b.devices())
                && intersects(a.pfNames(), b.pfNames());
    }

    private static <T> boolean intersects(Set<T> a, Set<T> b) {
        return a.isEmpty() || b.isEmpty() || a.stream().anyMatch(b::contains);
    }

    private List<String> strings(JsonNode node, String path, String expected) throws ConfigException {
        List<String> values = new ArrayList<>();
        if (node.isMissingNode() || node.isNull()) {
            return values;
        }
        if (!node.isArray()) {
            throw error(path, "is " + describe(node) + "; expected a list of " + expected);
        }
        for (JsonNode value : node) {
            if (!value.isTextual() || value.textValue().isBlank()) {
                throw error(path, "has " + describe(value) + "; expected " + expected);
            }
            values.add(value.textValue());
        }
        return values;
    }

    private Set<String> pciIds(JsonNode node, String path, String example) throws ConfigException {
        Set<String> ids = new LinkedHashSet<>();
        for (String id : strings(node, path, "PCI IDs such as " + example)) {
            String bare = id.startsWith("0x") ? id.substring(2) : id;
            if (!bare.matches("[0-9a-fA-F]{4}")) {
                throw error(path, "has '" + id + "'; expected a 4-digit hex PCI ID such as " + example);
            }
            ids.add(bare.toLowerCase(java.util.Locale.ROOT));
        }
        return ids;
    }

    /** A VF count as the kernel's {@code sriov_numvfs} takes it (a u16); {@code sriov_totalvfs} is checked later. */
    private int vfCount(String key, JsonNode value) throws ConfigException {
        if (!whole(value, 0, 65535)) {
            throw error(
                    key,
                    "is " + describe(value) + "; expected a VF count, a whole number 0..65535 (at most "
                            + "the PF's sriov_totalvfs)");
        }
        return value.intValue();
    }

    private AgentConfig.Tenancy tenancy(Section tenancy, String milliGpu) throws ConfigException {
        AgentConfig.AntiAffinity policy = switch (tenancy.string("policy", "gpu")) {
            case "gpu" -> AgentConfig.AntiAffinity.GPU;
            case "node" -> AgentConfig.AntiAffinity.NODE;
            case "none" -> AgentConfig.AntiAffinity.NONE;
            case String other ->
                throw error(
                        "tenancy.policy",
                        "'" + other + "' is unknown; expected gpu (two tenants "
                                + "never share a GPU), node (one tenant per node) or none");
        };
        String label = tenancy.string("tenantLabel", "omai.io/tenant");
        if (!LABEL_KEY.matcher(label).matches() || label.length() > 317) {
            throw error(
                    "tenancy.tenantLabel",
                    "'" + label + "' is not a Kubernetes label key; expected " + "[prefix/]name, e.g. omai.io/tenant");
        }
        // YAML 1.1 reads an unquoted on/off as a boolean
        JsonNode apiNode = tenancy.node("kubernetesApi");
        String apiText =
                apiNode.isBoolean() ? (apiNode.booleanValue() ? "on" : "off") : tenancy.string("kubernetesApi", "auto");
        AgentConfig.KubernetesApi api = switch (apiText) {
            case "auto" -> AgentConfig.KubernetesApi.AUTO;
            case "on" -> AgentConfig.KubernetesApi.ON;
            case "off" -> AgentConfig.KubernetesApi.OFF;
            case String other ->
                throw error(
                        "tenancy.kubernetesApi",
                        "'" + other + "' is unknown; expected auto " + "(use it inside a cluster), on or off");
        };
        // kubelet's admission waits for Allocate, so keep it short
        Duration identifyWait =
                tenancy.duration("identifyWait", Duration.ofSeconds(2), Duration.ZERO, Duration.ofSeconds(5));
        java.util.List<String> gpus = new ArrayList<>();
        JsonNode gpuList = tenancy.node("gpus");
        if (!gpuList.isMissingNode() && !gpuList.isNull()) {
            if (!gpuList.isArray()) {
                throw error(
                        "tenancy.gpus",
                        "is " + describe(gpuList) + "; expected a list of GPU UUIDs or "
                                + "indices, e.g. [0, 1] or [GPU-8f6c...]; empty means all");
            }
            for (JsonNode gpu : gpuList) {
                if (whole(gpu, 0, 1023)) {
                    gpus.add(Long.toString(gpu.longValue()));
                } else if (gpu.isTextual() && gpu.textValue().matches("(GPU|MIG)-[0-9A-Za-z-]+")) {
                    gpus.add(gpu.textValue());
                } else {
                    throw error(
                            "tenancy.gpus",
                            "has " + describe(gpu) + "; expected GPU UUIDs (GPU-...) or " + "NVML indices (0, 1, ...)");
                }
            }
            if (new LinkedHashSet<>(gpus).size() != gpus.size()) {
                throw error("tenancy.gpus", "names a GPU twice: " + gpus);
            }
        }
        String other = tenancy.string("otherGpuResource", "nvidia.com/gpu");
        if (!RESOURCE_NAME.matcher(other).matches() || other.equals(milliGpu)) {
            throw error(
                    "tenancy.otherGpuResource",
                    "'" + other + "' is not another plugin's extended resource "
                            + "name; expected e.g. nvidia.com/gpu");
        }
        // YAML 1.1 reads an unquoted off as false: `audit: off` means what it says
        JsonNode auditNode = tenancy.node("audit");
        String auditText =
                auditNode.isBoolean() && !auditNode.booleanValue() ? "off" : tenancy.string("audit", "report");
        AgentConfig.AuditAction audit = switch (auditText) {
            case "off" -> AgentConfig.AuditAction.OFF;
            case "report" -> AgentConfig.AuditAction.REPORT;
            case "kill" -> AgentConfig.AuditAction.KILL;
            case String value ->
                throw error(
                        "tenancy.audit",
                        "'" + value + "' is unknown; expected report (metric "
                                + "and event), kill (also SIGKILL the process) or off");
        };
        Duration auditInterval =
                tenancy.duration("auditInterval", Duration.ofSeconds(5), Duration.ofMillis(100), Duration.ofHours(1));
        return new AgentConfig.Tenancy(policy, label, api, identifyWait, gpus, other, audit, auditInterval);
    }

    private static String defaultNodeName() {
        String env = System.getenv("NODE_NAME");
        if (env != null && !env.isBlank()) {
            return env;
        }
        try {
            return InetAddress.getLocalHost().getHostName().toLowerCase(Locale.ROOT);
        } catch (IOException e) {
            return "localhost";
        }
    }

    /** Parses durations as operators write them: {@code 250ms}, {@code 30s}, {@code 5m}, {@code 1h}. */
    static Duration parseDuration(String text) {
        var m = DURATION.matcher(text.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException(
                    "'" + text + "' is not a duration; expected a whole number with " + "ms, s, m or h, e.g. 30s");
        }
        try {
            long amount = Long.parseLong(m.group(1));
            return switch (m.group(2)) {
                case "ms" -> Duration.ofMillis(amount);
                case "s" -> Duration.ofSeconds(amount);
                case "m" -> Duration.ofMinutes(amount);
                case "h" -> Duration.ofHours(amount);
                default -> throw new AssertionError(m.group(2));
            };
        } catch (ArithmeticException | NumberFormatException e) { // more digits than a long, or hours past it
            throw new IllegalArgumentException(
                    "'" + text + "' is too large; expected a whole number with ms, s, " + "m or h", e);
        }
    }

    /** A duration as the file would write it: the largest unit that divides it. */
    static String durationText(Duration duration) {
        long millis = duration.toMillis();
        if (millis != 0 && millis % 3_600_000 == 0) {
            return millis / 3_600_000 + "h";
        }
        if (millis != 0 && millis % 60_000 == 0) {
            return millis / 60_000 + "m";
        }
        if (millis != 0 && millis % 1_000 == 0) {
            return millis / 1_000 + "s";
        }
        return millis + "ms";
    }

    private ConfigException error(String key, String problem) {
        return new ConfigException(source, key, problem);
    }

    /** One mapping of the file: knows its path and its allowed keys. */
    private final class Section {
        private final String path;
        private final JsonNode node;

        Section(String path, JsonNode node, String... allowedKeys) throws ConfigException {
            this.path = path;
            this.node = node;
            if (!path.contains("[")) { // a list element's keys belong to its list's key
                sectionKeys.put(path, List.of(allowedKeys));
            }
            if (node.isMissingNode() || node.isNull()) {
                return;
            }
            if (!node.isObject()) {
                throw error(
                        path,
                        "is " + describe(node) + "; expected a mapping with keys " + String.join(", ", allowedKeys));
            }
            List<String> allowed = List.of(allowedKeys);
            Iterator<Map.Entry<String, JsonNode>> fields = node.properties().iterator();
            while (fields.hasNext()) {
                String key = fields.next().getKey();
                if (!allowed.contains(key)) {
                    throw error(key(key), "is not a known key; expected one of " + String.join(", ", allowedKeys));
                }
            }
        }

        private String key(String name) {
            return path.isEmpty() ? name : path + "." + name;
        }

        JsonNode node(String name) {
            return node.isObject() && node.has(name) ? node.get(name) : MissingNode.getInstance();
        }

        Section section(String name, String... allowedKeys) throws ConfigException {
            return new Section(key(name), node(name), allowedKeys);
        }

        String string(String name, String fallback) throws ConfigException {
            JsonNode value = node(name);
            if (value.isMissingNode() || value.isNull()) {
                return fallback;
            }
            if (!value.isTextual()) {
                throw error(key(name), "is " + describe(value) + "; expected a string");
            }
            return value.textValue();
        }

        boolean bool(String name, boolean fallback) throws ConfigException {
            JsonNode value = node(name);
            if (value.isMissingNode() || value.isNull()) {
                return fallback;
            }
            if (!value.isBoolean()) {
                throw error(key(name), "is " + describe(value) + "; expected true or false");
            }
            return value.booleanValue();
        }

        Path absolutePath(String name, Path fallback) throws ConfigException {
            String text = string(name, null);
            if (text == null) {
                return fallback;
            }
            Path path = Path.of(text);
            if (text.isBlank() || !path.isAbsolute()) {
                throw error(key(name), "'" + text + "' is not an absolute path; expected e.g. " + fallback);
            }
            return path.normalize();
        }

        /** A duration within {@code min..max}; every duration key has a range, so no value overflows later. */
        Duration duration(String name, Duration fallback, Duration min, Duration max) throws ConfigException {
            String text = string(name, null);
            if (text == null) {
                return fallback;
            }
            Duration value;
            try {
                value = parseDuration(text);
            } catch (IllegalArgumentException e) {
                throw error(key(name), e.getMessage() + ", within " + durationText(min) + ".." + durationText(max));
            }
            if (value.compareTo(min) < 0 || value.compareTo(max) > 0) {
                throw error(
                        key(name),
                        "'" + text + "' is "
                                + (value.compareTo(min) < 0
                                        ? "below " + durationText(min)
                                        : "above " + durationText(max))
                                + "; expected " + durationText(min) + ".." + durationText(max));
            }
            return value;
        }

        /** A byte size ({@link ByteQuantity}, or a whole number of bytes) within {@code min..max}. */
        long bytes(String name, long fallback, long min, long max) throws ConfigException {
            JsonNode value = node(name);
            if (value.isMissingNode() || value.isNull()) {
                return fallback;
            }
            long bytes;
            if (whole(value, 0, Long.MAX_VALUE)) {
                bytes = value.longValue();
            } else if (value.isTextual()) {
                try {
                    bytes = ByteQuantity.parse(value.textValue());
                } catch (IllegalArgumentException e) {
                    throw error(key(name), e.getMessage());
                }
            } else {
                throw error(key(name), "is " + describe(value) + "; expected a byte size, e.g. 256Mi");
            }
            if (bytes < min || bytes > max) {
                throw error(
                        key(name),
                        "'" + value.asText() + "' is outside " + ByteQuantity.format(min) + ".."
                                + ByteQuantity.format(max) + "; expected a byte size in that range");
            }
            return bytes;
        }

        Set<Long> longSet(String name, Set<Long> fallback) throws ConfigException {
            JsonNode value = node(name);
            if (value.isMissingNode() || value.isNull()) {
                return fallback;
            }
            if (!value.isArray()) {
                throw error(key(name), "is " + describe(value) + "; expected a list of whole numbers, e.g. [13, 31]");
            }
            Set<Long> result = new LinkedHashSet<>();
            List<String> bad = new ArrayList<>();
            for (JsonNode element : value) {
                if (whole(element, 0, MAX_XID)) {
                    result.add(element.longValue());
                } else {
                    bad.add(element.asText());
                }
            }
            if (!bad.isEmpty()) {
                throw error(key(name), "has " + bad + "; expected whole numbers 0.." + MAX_XID);
            }
            return Set.copyOf(result);
        }
    }

    /** A whole number in {@code min..max}; a number too large for a long is out of range, never wrapped. */
    private static boolean whole(JsonNode value, long min, long max) {
        return value.isIntegralNumber()
                && value.canConvertToLong()
                && value.longValue() >= min
                && value.longValue() <= max;
    }

    private static String describe(JsonNode value) {
        if (value.isTextual()) {
            return "'" + value.textValue() + "' (a string)";
        }
        if (value.isObject()) {
            return "a mapping";
        }
        if (value.isArray()) {
            return "a list";
        }
        return "'" + value.asText() + "' (" + value.getNodeType().name().toLowerCase(Locale.ROOT) + ")";
    }
}
