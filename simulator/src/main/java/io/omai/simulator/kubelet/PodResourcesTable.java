package io.omai.simulator.kubelet;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.deviceplugin.podresources.v1.ContainerDevices;
import io.omai.agent.deviceplugin.podresources.v1.ContainerResources;
import io.omai.agent.deviceplugin.podresources.v1.PodResources;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * What the simulated kubelet believes containers hold (its device manager's pod devices), served through
 * PodResources List. Thread-safe.
 */
public final class PodResourcesTable {
    /** A container and the device IDs it holds, per resource. */
    public record ContainerEntry(
            String namespace, String pod, String container, String resourceName, List<String> deviceIds) {
        public ContainerEntry {
            deviceIds = List.copyOf(deviceIds);
        }
    }

    @GuardedBy("this")
    private final Map<String, ContainerEntry> entries = new LinkedHashMap<>();
    // devices of plugins that are not simulated here (e.g. NVIDIA's nvidia.com/gpu), by resource
    @GuardedBy("this")
    private final Map<String, List<String>> otherAllocatable = new LinkedHashMap<>();

    private static String key(String namespace, String pod, String container, String resource) {
        return namespace + "/" + pod + "/" + container + "/" + resource;
    }

    public synchronized void put(ContainerEntry entry) {
        entries.put(key(entry.namespace(), entry.pod(), entry.container(), entry.resourceName()), entry);
    }

    /** Forgets every container of a pod (the pod was deleted). */
    public synchronized void removePod(String namespace, String pod) {
        entries.values()
                .removeIf(e -> e.namespace().equals(namespace) && e.pod().equals(pod));
    }

    /**
     * Makes GetAllocatableResources also report {@code deviceIds} under {@code resourceName}, as kubelet does for
     * another device plugin's devices (NVIDIA's {@code nvidia.com/gpu} UUIDs); an empty list removes them.
     */
    public synchronized void putAllocatable(String resourceName, List<String> deviceIds) {
        if (deviceIds.isEmpty()) {
            otherAllocatable.remove(resourceName);
        } else {
            otherAllocatable.put(resourceName, List.copyOf(deviceIds));
        }
    }

    /** The other plugins' allocatable devices, by resource. */
    synchronized Map<String, List<String>> otherAllocatable() {
        return Map.copyOf(otherAllocatable);
    }

    public synchronized List<ContainerEntry> entries() {
        return List.copyOf(entries.values());
    }

    /** Every device ID of a resource some container holds. */
    public synchronized Set<String> held(String resourceName) {
        Set<String> held = new TreeSet<>();
        for (ContainerEntry entry : entries.values()) {
            if (entry.resourceName().equals(resourceName)) {
                held.addAll(entry.deviceIds());
            }
        }
        return held;
    }

    /** The List answer: one PodResources per pod, containers with their devices. */
    synchronized List<PodResources> asPodResources() {
        Map<String, PodResources.Builder> pods = new LinkedHashMap<>();
        Map<String, Map<String, ContainerResources.Builder>> containers = new LinkedHashMap<>();
        for (ContainerEntry entry : entries.values()) {
            String podKey = entry.namespace() + "/" + entry.pod();
            pods.computeIfAbsent(
                    podKey,
                    k -> PodResources.newBuilder()
                            .setNamespace(entry.namespace())
                            .setName(entry.pod()));
            containers
                    .computeIfAbsent(podKey, k -> new LinkedHashMap<>())
                    .computeIfAbsent(
                            entry.container(),
                            c -> ContainerResources.newBuilder().setName(c))
                    .addDevices(ContainerDevices.newBuilder()
                            .setResourceName(entry.resourceName())
                            .addAllDeviceIds(entry.deviceIds()));
        }
        List<PodResources> result = new ArrayList<>();
        pods.forEach((podKey, pod) -> {
            containers.get(podKey).values().forEach(pod::addContainers);
            result.add(pod.build());
        });
        return result;
    }
}
