package io.omai.agent.dra;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.OwnerReference;
import io.fabric8.kubernetes.api.model.OwnerReferenceBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.resource.v1.CapacityRequestPolicyBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.Device;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceAttribute;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceAttributeBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceCapacity;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceCapacityBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceTaint;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceTaintBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceSlice;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceSliceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.dsl.NonDeletingOperation;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.deviceplugin.VfClaims;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.MilliGpu;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's ResourceSlices. With the VF plugin, a second pool {@code <node>-ib-vf} in its own slice holds one
 * unshared device per VF ({@link #vfDevices}). The GPU pool is named after the node, one slice, one device per GPU
 * ({@code gpu-<index>})
 * shared by several claims ({@code allowMultipleAllocations}) with consumable capacities {@code milli} (1000) and
 * {@code memory} (bytes), attributes for CEL selectors, and taints that steer the scheduler:
 * <ul>
 *   <li>{@code <driver>/unhealthy} when the GPU is unhealthy;</li>
 *   <li>{@code omai.io/tenant=<t>} for every tenant whose DRA claims occupy it (under {@code tenancy.policy: node},
 *       every tenant on the node, on every GPU), so only claims tolerating their own tenant land there;</li>
 *   <li>{@code omai.io/device-plugin} while the device-plugin path holds it (one GPU, one path);</li>
 *   <li>{@code omai.io/withdrawn} while another plugin hands it out.</li>
 * </ul>
 * All are {@code NoSchedule}: running workloads keep their GPU (the device-plugin path never evicts either).
 * Changes within the debounce become one update, and each update that changes the devices bumps the pool's
 * generation. The slice is owned by the Node object, so it goes with the node; it stays when the agent stops (a
 * restart must not make the scheduler forget the node's devices).
 */
final class SlicePublisher implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SlicePublisher.class);

    static final String TENANT_TAINT = "omai.io/tenant";
    static final String DEVICE_PLUGIN_TAINT = "omai.io/device-plugin";
    static final String WITHDRAWN_TAINT = "omai.io/withdrawn";
    static final String NO_SCHEDULE = "NoSchedule";
    /** The standard attribute (KEP-5491): the device's PCIe root complex, {@code pci<domain>:<bus>}. */
    static final String PCIE_ROOT = "resource.kubernetes.io/pcieRoot";

    private static final Duration RETRY = Duration.ofSeconds(5);
    // a taint value is a label value
    private static final Pattern LABEL_VALUE = Pattern.compile("([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?");

    private final AgentConfig config;
    private final KubernetesClient client;
    private final AllocationLedger ledger;
    private final Supplier<Map<String, GpuHealth>> health;
    private final GpuWithdrawals withdrawals;
    private final AntiAffinityPolicy policy;
    private final ScheduledExecutorService updates = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().name("omai-dra-slices").daemon().factory());

    @GuardedBy("this")
    private boolean scheduled;

    private final DevicePlaces places;
    private final Optional<VfClaims> vfs;

    /** What was last written to one slice (each slice is its own pool, with its own generation). */
    private static final class Written {
        List<Device> devices;
        long generation = -1;
    }

    @GuardedBy("this")
    private final Written gpuSlice = new Written();

    @GuardedBy("this")
    private final Written vfSlice = new Written();

    SlicePublisher(
            AgentConfig config,
            KubernetesClient client,
            AllocationLedger ledger,
            Supplier<Map<String, GpuHealth>> health,
            GpuWithdrawals withdrawals,
            AntiAffinityPolicy policy,
            DevicePlaces places,
            Optional<VfClaims> vfs) {
        this.places = places;
        this.vfs = vfs;
        this.config = config;
        this.client = client;
        this.ledger = ledger;
        this.health = health;
        this.withdrawals = withdrawals;
        this.policy = policy;
    }

    /** The GPU slice's name: the node and the driver. */
    String sliceName() {
        return config.nodeName() + "-" + config.dra().driverName().replace('.', '-');
    }

    /** The VF slice's name: the GPU slice's and {@code -ib-vf}. */
    String vfSliceName() {
        return sliceName() + "-ib-vf";
    }

    /** The VF pool: a pool of its own, so VF health churn never bumps the GPU pool's generation. */
    String vfPoolName() {
        return config.nodeName() + "-ib-vf";
    }

    /** Something the slice shows changed: publish after the debounce (once for all changes meanwhile). */
    void changed() {
        schedule(config.dra().sliceUpdateDebounce());
    }

    private void schedule(Duration delay) {
        synchronized (this) {
            if (scheduled) {
                return;
            }
            scheduled = true;
        }
        try {
            var _ = updates.schedule(this::publishScheduled, delay.toMillis(), TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException closing) {
            log.debug("event=slice_update_dropped detail=\"agent stopping\"");
        }
    }

    private void publishScheduled() {
        synchronized (this) {
            scheduled = false;
        }
        try {
            publishNow();
        } catch (KubernetesClientException e) {
            log.warn(
                    "event=slice_update_failed slice={} status={} error=\"{}\" retry_in={}",
                    sliceName(),
                    e.getCode(),
                    e.getMessage(),
                    RETRY);
            schedule(RETRY);
        } catch (RuntimeException e) {
            log.warn("event=slice_update_failed slice={} retry_in={}", sliceName(), RETRY, e);
            schedule(RETRY);
        }
    }

    /**
     * Writes the slices now whose devices differ from what was last written (or nothing was yet), bumping their
     * pool's generation; returns the generation the GPU slice has.
     */
    synchronized long publishNow() {
        long gpus = publish(gpuSlice, sliceName(), config.nodeName(), devices());
        if (vfs.isPresent()) {
            publish(vfSlice, vfSliceName(), vfPoolName(), vfDevices());
        }
        return gpus;
    }

    @GuardedBy("this")
    private long publish(Written written, String name, String pool, List<Device> devices) {
        if (devices.equals(written.devices)) {
            return written.generation;
        }
        if (written.generation < 0) {
            ResourceSlice existing =
                    client.resources(ResourceSlice.class).withName(name).get();
            written.generation = existing == null
                            || existing.getSpec() == null
                            || existing.getSpec().getPool() == null
                            || existing.getSpec().getPool().getGeneration() == null
                    ? 0
                    : existing.getSpec().getPool().getGeneration();
        }
        long next = written.generation + 1;
        ResourceSlice slice = new ResourceSliceBuilder()
                .withNewMetadata()
                .withName(name)
                .withOwnerReferences(nodeOwner())
                .endMetadata()
                .withNewSpec()
                .withDriver(config.dra().driverName())
                .withNodeName(config.nodeName())
                .withNewPool()
                .withName(pool)
                .withGeneration(next)
                .withResourceSliceCount(1L)
                .endPool()
                .withDevices(devices)
                .endSpec()
                .build();
        client.resources(ResourceSlice.class).resource(slice).createOr(NonDeletingOperation::update);
        written.generation = next;
        written.devices = devices;
        log.info(
                "event=slice_published slice={} pool={} generation={} devices={} taints={}",
                name,
                pool,
                next,
                devices.size(),
                devices.stream()
                        .filter(d -> d.getTaints() != null && !d.getTaints().isEmpty())
                        .map(d -> d.getName() + ":"
                                + d.getTaints().stream()
                                        .map(t -> t.getKey() + (t.getValue() == null ? "" : "=" + t.getValue()))
                                        .toList())
                        .toList());
        return next;
    }

    /**
     * The VF pool's devices: one per VF of the resource, not shareable (a VF is one container's), tainted
     * {@code <driver>/unhealthy} when unhealthy and {@code omai.io/device-plugin} while the device plugin hands it
     * out.
     */
    List<Device> vfDevices() {
        if (vfs.isEmpty()) {
            return List.of();
        }
        List<Device> devices = new ArrayList<>();
        for (VfClaims.Vf vf : vfs.get().vfs()) {
            Map<String, DeviceAttribute> attributes = new LinkedHashMap<>();
            attributes.put(
                    "pciAddress",
                    new DeviceAttributeBuilder().withString(vf.pciAddress()).build());
            attributes.put(
                    "pfName",
                    new DeviceAttributeBuilder().withString(vf.pfName()).build());
            vf.numaNode()
                    .ifPresent(numa -> attributes.put(
                            "numaNode",
                            new DeviceAttributeBuilder().withInt((long) numa).build()));
            attributes.put(
                    "linkType",
                    new DeviceAttributeBuilder().withString(vf.linkType()).build());
            String root = places.pcieRoot(vf.pciAddress());
            if (!root.isEmpty()) {
                attributes.put(
                        PCIE_ROOT, new DeviceAttributeBuilder().withString(root).build());
            }
            List<DeviceTaint> taints = new ArrayList<>();
            if (!vf.healthy()) {
                taints.add(taint(config.dra().driverName() + "/unhealthy", null));
            }
            if (vf.holder().equals(VfClaims.DEVICE_PLUGIN)) {
                taints.add(taint(DEVICE_PLUGIN_TAINT, null));
            }
            devices.add(new DeviceBuilder()
                    .withName(DeviceNames.ofVf(vf.pciAddress()))
                    .withAttributes(attributes)
                    .withTaints(taints.isEmpty() ? null : taints)
                    .build());
        }
        return devices;
    }

    private List<OwnerReference> nodeOwner() {
        try {
            Node node = client.nodes().withName(config.nodeName()).get();
            if (node == null || node.getMetadata().getUid() == null) {
                return List.of();
            }
            return List.of(new OwnerReferenceBuilder()
                    .withApiVersion("v1")
                    .withKind("Node")
                    .withName(config.nodeName())
                    .withUid(node.getMetadata().getUid())
                    .build());
        } catch (KubernetesClientException e) {
            log.debug("event=slice_owner_unknown node={} status={}", config.nodeName(), e.getCode());
            return List.of();
        }
    }

    /** The devices as they should be now. */
    List<Device> devices() {
        Map<String, GpuHealth> healthNow = health.get();
        Map<String, String> otherPlugin = withdrawals.of(GpuWithdrawals.OTHER_PLUGIN);
        Map<String, Set<String>> draTenants = new LinkedHashMap<>();
        Set<String> devicePluginGpus = new TreeSet<>();
        Set<String> nodeTenants = new TreeSet<>();
        for (Allocation allocation : ledger.allocations()) {
            for (String uuid : allocation.gpuUuids()) {
                if (allocation.claim().isDra()) {
                    draTenants.computeIfAbsent(uuid, u -> new TreeSet<>()).add(allocation.tenant());
                } else {
                    devicePluginGpus.add(uuid);
                }
            }
            if (!allocation.tenant().isEmpty()) {
                nodeTenants.add(allocation.tenant());
            }
        }
        List<Device> devices = new ArrayList<>();
        for (GpuDevice gpu : ledger.gpus()) {
            List<DeviceTaint> taints = new ArrayList<>();
            GpuHealth gpuHealth = healthNow.get(gpu.uuid());
            if (gpuHealth != null && !gpuHealth.healthy()) {
                taints.add(taint(config.dra().driverName() + "/unhealthy", null));
            }
            if (otherPlugin.containsKey(gpu.uuid())) {
                taints.add(taint(WITHDRAWN_TAINT, null));
            }
            if (devicePluginGpus.contains(gpu.uuid())) {
                taints.add(taint(DEVICE_PLUGIN_TAINT, null));
            }
            Set<String> tenants = switch (policy) {
                case NONE -> Set.of();
                case NODE -> nodeTenants;
                case GPU -> draTenants.getOrDefault(gpu.uuid(), Set.of());
            };
            for (String tenant : tenants) {
                // a tenant that is no label value (an unknown one) still occupies the device: taint without value
                taints.add(taint(TENANT_TAINT, LABEL_VALUE.matcher(tenant).matches() ? tenant : null));
            }
            devices.add(device(gpu, taints));
        }
        return devices;
    }

    private Device device(GpuDevice gpu, List<DeviceTaint> taints) {
        Map<String, DeviceAttribute> attributes = new LinkedHashMap<>();
        attributes.put(
                "uuid", new DeviceAttributeBuilder().withString(gpu.uuid()).build());
        attributes.put(
                "productName",
                new DeviceAttributeBuilder().withString(gpu.name()).build());
        attributes.put(
                "index",
                new DeviceAttributeBuilder().withInt((long) gpu.index()).build());
        attributes.put(
                "memory",
                new DeviceAttributeBuilder().withInt(gpu.memoryBytes()).build());
        String pciBusId = places.pciBusId(gpu.uuid());
        if (!pciBusId.isEmpty()) {
            attributes.put(
                    "pciBusID",
                    new DeviceAttributeBuilder().withString(pciBusId).build());
            String root = places.pcieRoot(pciBusId);
            if (!root.isEmpty()) {
                attributes.put(
                        PCIE_ROOT, new DeviceAttributeBuilder().withString(root).build());
            }
        }
        if (gpu.hasNumaNode()) {
            attributes.put(
                    "numaNode",
                    new DeviceAttributeBuilder().withInt((long) gpu.numaNode()).build());
        }
        attributes.put(
                "class",
                new DeviceAttributeBuilder()
                        .withString(config.dra().deviceClass())
                        .build());
        Map<String, DeviceCapacity> capacity = new LinkedHashMap<>();
        // milli: a request that names no milli consumes the whole GPU, as a claim without consumed capacity does
        capacity.put(
                ClaimPreparer.MILLI,
                new DeviceCapacityBuilder()
                        .withValue(new Quantity(Integer.toString(MilliGpu.PER_GPU)))
                        .withRequestPolicy(new CapacityRequestPolicyBuilder()
                                .withDefault(new Quantity(Integer.toString(MilliGpu.PER_GPU)))
                                .withNewValidRange()
                                .withMin(new Quantity("1"))
                                .withMax(new Quantity(Integer.toString(MilliGpu.PER_GPU)))
                                .withStep(new Quantity("1"))
                                .endValidRange()
                                .build())
                        .build());
        long min = config.dra().memoryMinimum();
        long step = config.dra().memoryStep();
        // the largest request on the step grid that fits the GPU: also the default (a whole GPU's memory)
        long max = min + ((gpu.memoryBytes() - min) / step) * step;
        DeviceCapacityBuilder memory =
                new DeviceCapacityBuilder().withValue(new Quantity(Long.toString(gpu.memoryBytes())));
        if (gpu.memoryBytes() >= min) {
            memory.withRequestPolicy(new CapacityRequestPolicyBuilder()
                    .withDefault(new Quantity(Long.toString(max)))
                    .withNewValidRange()
                    .withMin(new Quantity(Long.toString(min)))
                    .withMax(new Quantity(Long.toString(max)))
                    .withStep(new Quantity(Long.toString(step)))
                    .endValidRange()
                    .build());
        }
        capacity.put(ClaimPreparer.MEMORY, memory.build());
        return new DeviceBuilder()
                .withName(DeviceNames.of(gpu))
                .withAllowMultipleAllocations(true)
                .withAttributes(attributes)
                .withCapacity(capacity)
                .withTaints(taints.isEmpty() ? null : taints)
                .build();
    }

    private static DeviceTaint taint(String key, String value) {
        return new DeviceTaintBuilder()
                .withKey(key)
                .withValue(value)
                .withEffect(NO_SCHEDULE)
                .build();
    }

    @Override
    public void close() {
        updates.shutdownNow();
    }
}
