package io.omai.agent.dra;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.DeviceSpec;
import io.omai.agent.deviceplugin.v1beta1.Mount;
import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * One CDI spec per prepared claim in the CDI directory ({@code /var/run/cdi}): kind {@code <driver>/claim}, one
 * device named by the claim's UID, whose container edits are exactly what the device plugin's Allocate answers
 * for the same allocation (env, the shim, control and usage files, {@code ld.so.preload}, the GPU device nodes).
 * The container runtime reads these files, so each is written whole (temp file, then rename) and world-readable.
 */
final class CdiSpecs {
    /** The CDI spec version written: 0.6.0 has everything used here (env, mounts, deviceNodes). */
    static final String CDI_VERSION = "0.6.0";

    // CDI device names: letters, digits, '_', '.', ':', '-', starting with a letter or digit (claim UIDs are)
    private static final Pattern DEVICE_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.:-]*");
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path directory;
    private final String driver;

    CdiSpecs(Path directory, String driver) {
        this.directory = directory;
        this.driver = driver;
    }

    /** {@code <driver>/claim}: the vendor is the driver name, the class says one device per claim. */
    String kind() {
        return driver + "/claim";
    }

    /** The fully qualified CDI device ID of a claim's device, as answered to kubelet. */
    String deviceId(String claimUid) {
        return kind() + "=" + claimUid;
    }

    Path file(String claimUid) {
        return directory.resolve(driver + "-" + claimUid + ".json");
    }

    /** Writes the claim's spec with the container edits of {@code edits}, atomically; returns the file. */
    Path write(String claimUid, ContainerAllocateResponse edits) throws IOException {
        if (!DEVICE_NAME.matcher(claimUid).matches()) {
            throw new IOException("claim UID '" + claimUid + "' is not a CDI device name");
        }
        ObjectNode spec = JSON.createObjectNode();
        spec.put("cdiVersion", CDI_VERSION);
        spec.put("kind", kind());
        ObjectNode device = spec.putArray("devices").addObject();
        device.put("name", claimUid);
        ObjectNode containerEdits = device.putObject("containerEdits");
        ArrayNode env = containerEdits.putArray("env");
        // sorted, so a repeated prepare writes the same bytes
        Map<String, String> sorted = new TreeMap<>(edits.getEnvsMap());
        sorted.forEach((key, value) -> env.add(key + "=" + value));
        ArrayNode mounts = containerEdits.putArray("mounts");
        for (Mount mount : edits.getMountsList()) {
            ObjectNode m = mounts.addObject();
            m.put("hostPath", mount.getHostPath());
            m.put("containerPath", mount.getContainerPath());
            ArrayNode options = m.putArray("options");
            options.add(mount.getReadOnly() ? "ro" : "rw");
            options.add("nosuid");
            options.add("nodev");
            options.add("bind");
        }
        ArrayNode nodes = containerEdits.putArray("deviceNodes");
        for (DeviceSpec node : edits.getDevicesList()) {
            ObjectNode n = nodes.addObject();
            n.put("path", node.getContainerPath());
            n.put("hostPath", node.getHostPath());
            n.put("permissions", node.getPermissions());
        }
        Files.createDirectories(directory);
        Path target = file(claimUid);
        Path temp = directory.resolve("." + target.getFileName() + ".tmp");
        Files.deleteIfExists(temp); // never written through a link someone planted
        Files.write(temp, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(spec));
        Files.setPosixFilePermissions(temp, PosixFilePermissions.fromString("rw-r--r--"));
        try {
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.deleteIfExists(temp);
            throw new IOException("cannot replace " + target + " atomically: " + e.getMessage(), e);
        }
        return target;
    }

    /** Removes the claim's spec; true when there was one. */
    boolean delete(String claimUid) throws IOException {
        return DEVICE_NAME.matcher(claimUid).matches() && Files.deleteIfExists(file(claimUid));
    }
}
