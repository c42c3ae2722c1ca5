package io.omai.agent.dra;

import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.resource.v1.AllocationResult;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResult;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimConsumerReference;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.deviceplugin.ContainerEdits;
import io.omai.agent.deviceplugin.VfClaims;
import io.omai.agent.deviceplugin.v1beta1.CDIDevice;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.tenancy.AdmissionRefusal;
import io.omai.agent.tenancy.ClaimAdmission;
import io.omai.agent.tenancy.TenantIdentity;
import io.omai.placement.MilliGpu;
import java.io.IOException;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * NodePrepareResources and NodeUnprepareResources for one claim, whatever the API version: reads the claim's
 * allocation from the API server, keeps the results of this driver and this node's pool, turns their consumed
 * capacity into a ledger allocation through {@link ClaimAdmission} (the same files and quotas as Allocate), writes
 * the claim's CDI spec and answers its devices. Every problem is the claim's own error ({@link ClaimException});
 * a refused claim leaves nothing behind (no ledger entry, no files, no spec). Idempotent: a repeat answers the
 * same, also after a restart (the ledger's checkpoint keeps the allocation and its claim UID).
 */
final class ClaimPreparer {
    private static final Logger log = LoggerFactory.getLogger(ClaimPreparer.class);

    static final String MILLI = "milli";
    static final String MEMORY = "memory";

    private final AgentConfig config;
    private final AllocationLedger ledger;
    private final ClaimAdmission admission;
    private final ContainerEdits edits;
    private final CdiSpecs cdi;
    private final KubernetesClient client;
    private final TenantIdentity tenants;
    private final java.util.function.Supplier<Map<String, GpuHealth>> health;
    private final Optional<VfClaims> vfs;
    private final String vfPool;

    ClaimPreparer(
            AgentConfig config,
            AllocationLedger ledger,
            ClaimAdmission admission,
            ContainerEdits edits,
            KubernetesClient client,
            TenantIdentity tenants,
            java.util.function.Supplier<Map<String, GpuHealth>> health,
            Optional<VfClaims> vfs,
            String vfPool) {
        this.health = health;
        this.vfs = vfs;
        this.vfPool = vfPool;
        this.config = config;
        this.ledger = ledger;
        this.admission = admission;
        this.edits = edits;
        this.cdi = new CdiSpecs(config.dra().cdiDir(), config.dra().driverName());
        this.client = Objects.requireNonNull(client, "client");
        this.tenants = tenants;
    }

    /** A claim's failure, answered in its own entry of the response. */
    static final class ClaimException extends Exception {
        ClaimException(String message) {
            super(message, null, false, false);
        }
    }

    /** One device of a prepared claim, as the response names it. */
    record PreparedDevice(String request, String pool, String device, List<String> cdiDeviceIds) {}

    /** One of this driver's results in the claim: a GPU and what the claim consumes of it. */
    private record GpuResult(String request, String pool, String device, GpuDevice gpu, int milli, long memory) {
        boolean whole() {
            return milli == MilliGpu.PER_GPU && (memory == 0 || memory == gpu.memoryBytes());
        }
    }

    /** One of this driver's results naming a VF of the VF pool. */
    private record VfResult(String request, String pool, String device, String pciAddress) {}

    List<PreparedDevice> prepare(String namespace, String uid, String name) throws ClaimException {
        if (namespace.isEmpty() || uid.isEmpty() || name.isEmpty()) {
            throw new ClaimException("claim '" + namespace + "/" + name + "' (uid '" + uid + "') lacks its namespace, "
                    + "uid or name; kubelet sends all three");
        }
        String ref = namespace + "/" + name;
        ResourceClaim claim;
        try {
            claim = client.resources(ResourceClaim.class)
                    .inNamespace(namespace)
                    .withName(name)
                    .get();
        } catch (KubernetesClientException e) {
            throw new ClaimException("cannot read ResourceClaim " + ref + " from the API server (" + e.getCode() + "): "
                    + e.getMessage());
        }
        if (claim == null) {
            throw new ClaimException("ResourceClaim " + ref + " does not exist; expected the claim kubelet prepares");
        }
        if (!uid.equals(claim.getMetadata().getUid())) {
            throw new ClaimException(
                    "ResourceClaim " + ref + " has uid " + claim.getMetadata().getUid() + ", kubelet asked for uid "
                            + uid + " (deleted and re-created?); nothing prepared");
        }
        AllocationResult allocation =
                claim.getStatus() == null ? null : claim.getStatus().getAllocation();
        if (allocation == null || allocation.getDevices() == null) {
            throw new ClaimException("ResourceClaim " + ref + " is not allocated; expected status.allocation "
                    + "written by the scheduler before kubelet prepares it");
        }
        List<GpuResult> ours = new ArrayList<>();
        List<VfResult> ourVfs = new ArrayList<>();
        Set<String> otherDrivers = new java.util.TreeSet<>();
        for (DeviceRequestAllocationResult result : allocation.getDevices().getResults()) {
            if (!config.dra().driverName().equals(result.getDriver())) {
                // another driver's device in a multi-driver claim: that driver prepares it
                otherDrivers.add(String.valueOf(result.getDriver()));
                continue;
            }
            if (vfs.isPresent() && vfPool.equals(result.getPool())) {
                VfResult vf = vfResult(ref, result);
                if (ourVfs.stream().anyMatch(r -> r.pciAddress().equals(vf.pciAddress()))) {
                    throw new ClaimException("ResourceClaim " + ref + " holds device " + vf.device()
                            + " twice; expected each VF once per claim");
                }
                ourVfs.add(vf);
            } else {
                ours.add(gpuResult(ref, result));
            }
        }
        if (ours.isEmpty() && ourVfs.isEmpty()) {
            // kubelet sends a driver only claims with results for it: this one reached the wrong plugin
            throw new ClaimException("ResourceClaim " + ref + " (uid " + uid + ") has no result for driver "
                    + config.dra().driverName() + "; its results are for "
                    + (otherDrivers.isEmpty() ? "no driver" : String.join(", ", otherDrivers))
                    + "; expected kubelet to send it to that driver; nothing prepared");
        }
        // a repeat's allocation serves a running container: a failed step must not release it
        boolean gpusRepeat = !ledger.draAllocations(uid).isEmpty();
        boolean vfsRepeat = vfs.isPresent() && vfs.get().holds(uid);
        ContainerAllocateResponse.Builder containerEdits = ContainerAllocateResponse.newBuilder();
        Allocation made = null;
        ClaimAdmission.ClaimRequest request = null;
        if (!ours.isEmpty()) {
            request = request(claim, ours);
            if (!gpusRepeat) {
                // as kubelet never allocates an unhealthy device: a claim allocated before its GPU failed waits
                Map<String, GpuHealth> now = health.get();
                for (GpuResult result : ours) {
                    GpuHealth gpuHealth = now.get(result.gpu().uuid());
                    if (gpuHealth != null && !gpuHealth.healthy()) {
                        throw new ClaimException("ResourceClaim " + ref + ": device " + result.device() + " (GPU "
                                + result.gpu().uuid() + ") is unhealthy: " + gpuHealth.reason()
                                + "; expected a healthy device (the slice taints it "
                                + config.dra().driverName()
                                + "/unhealthy)");
                    }
                }
            }
            try {
                made = admission.admit(request);
            } catch (LedgerException | AdmissionRefusal e) {
                throw new ClaimException("ResourceClaim " + ref + ": " + e.getMessage());
            }
            if (!sameShape(made, request)) {
                throw new ClaimException("ResourceClaim " + ref + " (uid " + uid + ") was prepared before as "
                        + made.milliPerGpu() + " milli per GPU and now asks for " + request.milliPerGpu() + " on "
                        + request.gpuUuids() + "; an allocation of a claim does not change");
            }
            containerEdits.mergeFrom(edits.forAllocation(made));
        }
        if (!ourVfs.isEmpty()) {
            try {
                containerEdits.mergeFrom(vfs.orElseThrow()
                        .claim(uid, ourVfs.stream().map(VfResult::pciAddress).toList()));
            } catch (VfClaims.RefusedException e) {
                if (made != null && !gpusRepeat) {
                    ledger.releaseDra(uid);
                }
                throw new ClaimException("ResourceClaim " + ref + ": " + e.getMessage()
                        + (gpusRepeat || vfsRepeat ? "; the claim stays prepared as before" : "; nothing prepared"));
            }
        }
        try {
            cdi.write(uid, containerEdits.build());
        } catch (IOException | RuntimeException e) {
            if (!gpusRepeat && made != null) {
                ledger.releaseDra(uid);
            }
            if (!vfsRepeat && !ourVfs.isEmpty()) {
                releaseVfs(ref, uid);
            }
            throw new ClaimException("ResourceClaim " + ref + ": cannot write its CDI spec in "
                    + config.dra().cdiDir() + ": " + e.getMessage()
                    + (gpusRepeat || vfsRepeat ? "; the claim stays prepared as before" : "; nothing prepared"));
        }
        List<String> cdiIds = new ArrayList<>();
        cdiIds.add(cdi.deviceId(uid));
        // with sharing.cdi.enabled the GPUs' device nodes come from NVIDIA's CDI spec, as for Allocate
        containerEdits.getCdiDevicesList().stream().map(CDIDevice::getName).forEach(cdiIds::add);
        List<PreparedDevice> devices = new ArrayList<>();
        for (GpuResult result : ours) {
            devices.add(new PreparedDevice(result.request(), result.pool(), result.device(), List.copyOf(cdiIds)));
        }
        for (VfResult result : ourVfs) {
            devices.add(new PreparedDevice(result.request(), result.pool(), result.device(), List.copyOf(cdiIds)));
        }
        log.info(
                "event=claim_prepared claim={} uid={} allocation={} tenant={} gpus={} memory_per_gpu={} vfs={} cdi={}",
                ref,
                uid,
                made == null ? "" : made.id(),
                made == null ? "" : made.tenant(),
                made == null ? Map.of() : made.milliPerGpu(),
                request == null ? 0 : request.memoryBytesPerGpu(),
                ourVfs.stream().map(VfResult::pciAddress).toList(),
                cdi.deviceId(uid));
        return devices;
    }

    private void releaseVfs(String ref, String uid) {
        try {
            vfs.orElseThrow().release(uid);
        } catch (IOException e) {
            log.warn("event=claim_vfs_release_failed claim={} uid={} error=\"{}\"", ref, uid, e.getMessage());
        }
    }

    /** A result in the VF pool: a VF of this node, consuming no capacity (a VF is not shared). */
    private VfResult vfResult(String ref, DeviceRequestAllocationResult result) throws ClaimException {
        String what = "ResourceClaim " + ref + ", request '" + result.getRequest() + "', device '" + result.getPool()
                + "/" + result.getDevice() + "'";
        List<VfClaims.Vf> known = vfs.orElseThrow().vfs();
        VfClaims.Vf vf = known.stream()
                .filter(v -> DeviceNames.ofVf(v.pciAddress()).equals(result.getDevice()))
                .findFirst()
                .orElseThrow(() -> new ClaimException(what + ": no such VF on node " + config.nodeName()
                        + "; expected one of "
                        + known.stream()
                                .map(v -> DeviceNames.ofVf(v.pciAddress()))
                                .toList()));
        if (result.getConsumedCapacity() != null
                && !result.getConsumedCapacity().isEmpty()) {
            throw new ClaimException(
                    what + ": consumedCapacity " + result.getConsumedCapacity().keySet()
                            + " on a VF; expected none (a VF has no capacity and is not shared)");
        }
        return new VfResult(result.getRequest(), result.getPool(), result.getDevice(), vf.pciAddress());
    }

    /** Releases the claim's allocation and removes its spec; a claim never prepared is unprepared already. */
    void unprepare(String namespace, String uid, String name) throws ClaimException {
        List<Allocation> released = ledger.releaseDra(uid);
        List<String> releasedVfs;
        try {
            releasedVfs = vfs.isPresent() ? vfs.get().release(uid) : List.of();
        } catch (IOException e) {
            throw new ClaimException(
                    "ResourceClaim " + namespace + "/" + name + ": cannot release its VFs: " + e.getMessage());
        }
        boolean specRemoved;
        try {
            specRemoved = cdi.delete(uid);
        } catch (IOException e) {
            throw new ClaimException("ResourceClaim " + namespace + "/" + name + ": cannot remove its CDI spec "
                    + cdi.file(uid) + ": " + e.getMessage());
        }
        log.info(
                "event=claim_unprepared claim={}/{} uid={} allocations={} vfs={} spec_removed={}",
                namespace,
                name,
                uid,
                released.stream().map(Allocation::id).toList(),
                releasedVfs,
                specRemoved);
    }

    private GpuResult gpuResult(String ref, DeviceRequestAllocationResult result) throws ClaimException {
        String what = "ResourceClaim " + ref + ", request '" + result.getRequest() + "', device '" + result.getPool()
                + "/" + result.getDevice() + "'";
        if (!config.nodeName().equals(result.getPool())) {
            throw new ClaimException(what + ": pool '" + result.getPool() + "' is not this node's (" + config.nodeName()
                    + "); expected a device of pool " + config.nodeName());
        }
        GpuDevice gpu = DeviceNames.gpu(ledger.gpus(), result.getDevice())
                .orElseThrow(() -> new ClaimException(what + ": no such device on node " + config.nodeName()
                        + "; expected one of " + DeviceNames.names(ledger.gpus())));
        Map<String, Quantity> consumed = result.getConsumedCapacity();
        int milli = MilliGpu.PER_GPU;
        long memory = 0;
        if (consumed != null && !consumed.isEmpty()) {
            for (String key : consumed.keySet()) {
                if (!key.equals(MILLI) && !key.equals(MEMORY)) {
                    throw new ClaimException(
                            what + ": consumedCapacity has '" + key + "'; expected only " + MILLI + " and " + MEMORY);
                }
            }
            if (consumed.containsKey(MILLI)) {
                long value = whole(what, MILLI, consumed.get(MILLI));
                if (value < 1 || value > MilliGpu.PER_GPU) {
                    throw new ClaimException(what + ": consumedCapacity milli " + value + " is outside 1.."
                            + MilliGpu.PER_GPU + " (the device's capacity)");
                }
                milli = (int) value;
            }
            if (consumed.containsKey(MEMORY)) {
                memory = whole(what, MEMORY, consumed.get(MEMORY));
                if (memory < 1 || memory > gpu.memoryBytes()) {
                    throw new ClaimException(what + ": consumedCapacity memory " + memory + " bytes is outside 1.."
                            + gpu.memoryBytes() + " (the device's capacity)");
                }
            }
        }
        return new GpuResult(result.getRequest(), result.getPool(), result.getDevice(), gpu, milli, memory);
    }

    private static long whole(String what, String key, Quantity quantity) throws ClaimException {
        BigDecimal amount;
        try {
            amount = Quantity.getAmountInBytes(quantity);
        } catch (RuntimeException e) {
            throw new ClaimException(what + ": consumedCapacity " + key + " '" + quantity + "' is not a quantity");
        }
        try {
            return amount.longValueExact();
        } catch (ArithmeticException e) {
            throw new ClaimException(
                    what + ": consumedCapacity " + key + " '" + quantity + "' is not a whole number below 2^63");
        }
    }

    /** The ledger request for the claim's results: one share of one GPU, or whole GPUs. */
    private ClaimAdmission.ClaimRequest request(ResourceClaim claim, List<GpuResult> ours) throws ClaimException {
        String ref =
                claim.getMetadata().getNamespace() + "/" + claim.getMetadata().getName();
        Set<String> seen = new HashSet<>();
        for (GpuResult result : ours) {
            if (!seen.add(result.gpu().uuid())) {
                throw new ClaimException("ResourceClaim " + ref + " holds device " + result.device()
                        + " twice; expected each GPU once per claim");
            }
        }
        boolean allWhole = ours.stream().allMatch(GpuResult::whole);
        if (ours.size() > 1 && !allWhole) {
            throw new ClaimException("ResourceClaim " + ref + " holds " + ours.size() + " GPUs, not all whole; "
                    + "expected one share of one GPU or whole GPUs (one control file per claim)");
        }
        String podUid = "";
        String pod = "";
        String tenant = claim.getMetadata().getNamespace();
        List<ResourceClaimConsumerReference> reservedFor = claim.getStatus().getReservedFor() == null
                ? List.of()
                : claim.getStatus().getReservedFor();
        for (ResourceClaimConsumerReference consumer : reservedFor) {
            if ("pods".equals(consumer.getResource())
                    && (consumer.getApiGroup() == null || consumer.getApiGroup().isEmpty())) {
                podUid = Objects.requireNonNullElse(consumer.getUid(), "");
                pod = Objects.requireNonNullElse(consumer.getName(), "");
                tenant = tenantOf(claim.getMetadata().getNamespace(), pod, tenant);
                break;
            }
        }
        GpuResult first = ours.getFirst();
        return new ClaimAdmission.ClaimRequest(
                claim.getMetadata().getUid(),
                claim.getMetadata().getNamespace(),
                claim.getMetadata().getName(),
                podUid,
                pod,
                tenant,
                ours.stream().map(r -> r.gpu().uuid()).toList(),
                allWhole ? MilliGpu.PER_GPU : first.milli(),
                allWhole ? 0 : first.memory());
    }

    /** The pod's tenant label, else the namespace, as the device-plugin path reads it. */
    private String tenantOf(String namespace, String podName, String fallback) throws ClaimException {
        try {
            Pod pod = client.pods().inNamespace(namespace).withName(podName).get();
            return pod == null ? fallback : tenants.tenantOf(pod.getMetadata().getLabels(), namespace);
        } catch (KubernetesClientException e) {
            // fail closed: the tenant decides who may share the GPU
            throw new ClaimException("cannot read pod " + namespace + "/" + podName + " for its tenant (" + e.getCode()
                    + "): " + e.getMessage());
        }
    }

    private static boolean sameShape(Allocation made, ClaimAdmission.ClaimRequest request) {
        Map<String, Integer> perGpu = made.milliPerGpu();
        return perGpu.keySet().equals(new HashSet<>(request.gpuUuids()))
                && perGpu.values().stream().allMatch(m -> m == request.milliPerGpu());
    }
}
