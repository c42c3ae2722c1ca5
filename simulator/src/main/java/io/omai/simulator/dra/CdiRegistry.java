package io.omai.simulator.dra;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.omai.simulator.launcher.ContainerEdits;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The container runtime's side of CDI (the Container Device Interface) for tests: reads the spec files of a CDI
 * directory ({@code *.json}, {@code *.yaml}) as a runtime's CDI cache does when a container is created, and
 * resolves fully qualified device names ({@code vendor/class=name}) into the {@link ContainerEdits} the launcher
 * applies: the spec-level {@code containerEdits} of each spec involved once, then each device's own. A spec file
 * that cannot be used is left out and reported; a name no usable spec defines fails the whole resolution, as
 * containerd's "unresolvable CDI devices" does — a container never starts with some of its devices missing.
 * Hooks are not run (the simulated node has nothing for them to do); a spec carrying any is refused, so a
 * test never passes on edits it did not apply.
 */
public final class CdiRegistry {
    private static final Pattern KIND = Pattern.compile("[A-Za-z0-9][A-Za-z0-9.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*");
    private static final Pattern DEVICE_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.:-]*");
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    /** One spec file as read: its kind, its spec-level edits and its devices' edits by name. */
    private record Spec(Path file, String kind, ContainerEdits specEdits, Map<String, ContainerEdits> devices) {}

    private final Map<String, Spec> specOfDevice;
    private final List<String> specErrors;

    private CdiRegistry(Map<String, Spec> specOfDevice, List<String> specErrors) {
        this.specOfDevice = specOfDevice;
        this.specErrors = specErrors;
    }

    /** Reads every spec file in {@code cdiDir} now (a missing directory holds none). */
    public static CdiRegistry scan(Path cdiDir) {
        Map<String, Spec> specOfDevice = new LinkedHashMap<>();
        List<String> errors = new ArrayList<>();
        if (!Files.isDirectory(cdiDir)) {
            return new CdiRegistry(specOfDevice, errors);
        }
        List<Path> files;
        try (Stream<Path> listing = Files.list(cdiDir)) {
            files = listing.filter(file -> {
                        String name = file.getFileName().toString();
                        return name.endsWith(".json") || name.endsWith(".yaml");
                    })
                    .sorted()
                    .toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list the CDI directory " + cdiDir, e);
        }
        for (Path file : files) {
            Spec spec;
            try {
                spec = parse(file);
            } catch (IOException | IllegalArgumentException e) {
                errors.add(file + ": " + e.getMessage());
                continue;
            }
            for (String device : spec.devices().keySet()) {
                String qualified = spec.kind() + "=" + device;
                Spec other = specOfDevice.putIfAbsent(qualified, spec);
                if (other != null) {
                    errors.add(file + ": device " + qualified + " is also defined in " + other.file());
                }
            }
        }
        return new CdiRegistry(specOfDevice, List.copyOf(errors));
    }

    /** Problems with spec files found by the scan (each names its file). */
    public List<String> specErrors() {
        return specErrors;
    }

    /** Every fully qualified device name the usable specs define. */
    public Set<String> deviceNames() {
        return Set.copyOf(specOfDevice.keySet());
    }

    /**
     * The edits for {@code qualifiedNames}, in order; fails naming every unresolvable device (and the spec
     * errors, which are the likely cause) if any is not defined.
     */
    public ContainerEdits resolve(List<String> qualifiedNames) {
        List<String> unresolvable = new ArrayList<>();
        for (String name : qualifiedNames) {
            if (!specOfDevice.containsKey(name)) {
                unresolvable.add(name);
            }
        }
        if (!unresolvable.isEmpty()) {
            throw new CdiResolutionException("unresolvable CDI devices " + String.join(", ", unresolvable)
                    + (specErrors.isEmpty() ? "" : "; spec errors: " + specErrors));
        }
        ContainerEdits edits = ContainerEdits.NONE;
        Set<Path> specsApplied = new LinkedHashSet<>();
        for (String name : qualifiedNames) {
            Spec spec = specOfDevice.get(name);
            if (specsApplied.add(spec.file())) {
                edits = edits.then(spec.specEdits());
            }
            edits = edits.then(spec.devices().get(name.substring(name.indexOf('=') + 1)));
        }
        return edits;
    }

    /** A CDI device name could not be resolved into edits. */
    public static final class CdiResolutionException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CdiResolutionException(String message) {
            super(message);
        }
    }

    private static Spec parse(Path file) throws IOException {
        JsonNode root = YAML.readTree(file.toFile());
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException("expected a CDI spec object");
        }
        String version = text(root, "cdiVersion");
        if (!version.matches("\\d+\\.\\d+\\.\\d+")) {
            throw new IllegalArgumentException("cdiVersion '" + version + "' is not a version like 0.6.0");
        }
        String kind = text(root, "kind");
        if (!KIND.matcher(kind).matches()) {
            throw new IllegalArgumentException("kind '" + kind + "' is not vendor/class");
        }
        JsonNode devices = root.path("devices");
        if (!devices.isArray() || devices.isEmpty()) {
            throw new IllegalArgumentException("a CDI spec needs at least one device in 'devices'");
        }
        Map<String, ContainerEdits> byName = new LinkedHashMap<>();
        for (JsonNode device : devices) {
            String name = text(device, "name");
            if (!DEVICE_NAME.matcher(name).matches()) {
                throw new IllegalArgumentException("device name '" + name + "' is not a valid CDI device name");
            }
            if (byName.put(name, edits(device.path("containerEdits"), "device " + name)) != null) {
                throw new IllegalArgumentException("device " + name + " is defined twice");
            }
        }
        return new Spec(file, kind, edits(root.path("containerEdits"), "the spec's containerEdits"), byName);
    }

    private static ContainerEdits edits(JsonNode node, String where) {
        if (node.isMissingNode() || node.isNull()) {
            return ContainerEdits.NONE;
        }
        if (node.has("hooks") && !node.get("hooks").isEmpty()) {
            throw new IllegalArgumentException(where + " has hooks, which this runtime does not run");
        }
        Map<String, String> env = new LinkedHashMap<>();
        for (JsonNode entry : node.path("env")) {
            String text = entry.asText();
            int eq = text.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException(where + ": env entry '" + text + "' is not KEY=VALUE");
            }
            env.put(text.substring(0, eq), text.substring(eq + 1));
        }
        List<ContainerEdits.BindMount> mounts = new ArrayList<>();
        for (JsonNode mount : node.path("mounts")) {
            String host = text(mount, "hostPath");
            String container = text(mount, "containerPath");
            if (!container.startsWith("/")) {
                throw new IllegalArgumentException(where + ": mount containerPath '" + container + "' is not absolute");
            }
            boolean readOnly = false;
            for (JsonNode option : mount.path("options")) {
                readOnly |= option.asText().equals("ro");
            }
            mounts.add(new ContainerEdits.BindMount(host, container, readOnly));
        }
        List<ContainerEdits.DeviceNode> nodes = new ArrayList<>();
        for (JsonNode device : node.path("deviceNodes")) {
            String path = text(device, "path");
            String host = device.path("hostPath").asText("");
            nodes.add(new ContainerEdits.DeviceNode(host.isEmpty() ? path : host, path));
        }
        return new ContainerEdits(env, mounts, nodes);
    }

    private static String text(JsonNode node, String field) {
        JsonNode value = node.get(field);
        if (value == null || !value.isTextual() || value.asText().isEmpty()) {
            throw new IllegalArgumentException("missing or empty '" + field + "'");
        }
        return value.asText();
    }
}
