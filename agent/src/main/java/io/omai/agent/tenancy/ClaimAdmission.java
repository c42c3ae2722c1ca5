package io.omai.agent.tenancy;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationClaim;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.MilliGpu;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Tenancy at DRA's NodePrepareResources: records a claim's GPU share in the same ledger, with the same files and
 * quotas, as the device plugin's Allocate, after the same checks under the same lock ({@link ReservationBook#admit},
 * where Allocate checks too): the anti-affinity policy against every allocation and reservation on the node, the
 * capacity other pods' reservations hold, and "one GPU, one path" (the ledger refuses a GPU the device-plugin path
 * holds). DRA cannot yet say "these claims must not share a device" (KEP-5981), so this is where two tenants are
 * kept apart: a claim of another tenant on an occupied GPU is refused here, fail closed, and reported as an event.
 *
 * <p>Capacity in the ledger is slots: a claim consuming {@code milli} of a GPU takes that many free slot IDs, so the
 * device plugin, the scheduler API and the compute controller see it exactly as an Allocate of those IDs.
 */
public final class ClaimAdmission {
    private static final Logger log = LoggerFactory.getLogger(ClaimAdmission.class);
    // slots taken between picking and committing (a concurrent Allocate or prepare) make the commit refuse; pick again
    private static final int ATTEMPTS = 3;

    private final String nodeName;
    private final AllocationLedger ledger;
    private final ReservationBook book;
    private final GpuWithdrawals withdrawals;
    private volatile ClusterEvents events = ClusterEvents.NONE;

    /** @param withdrawals GPUs another plugin hands out ({@link GpuWithdrawals#OTHER_PLUGIN}) are refused */
    public ClaimAdmission(String nodeName, AllocationLedger ledger, ReservationBook book, GpuWithdrawals withdrawals) {
        this.nodeName = Objects.requireNonNull(nodeName, "nodeName");
        this.ledger = Objects.requireNonNull(ledger, "ledger");
        this.book = Objects.requireNonNull(book, "book");
        this.withdrawals = Objects.requireNonNull(withdrawals, "withdrawals");
    }

    /** Where refusals are reported as pod events (none until set). */
    public void reportTo(ClusterEvents clusterEvents) {
        this.events = Objects.requireNonNull(clusterEvents, "clusterEvents");
    }

    public AntiAffinityPolicy policy() {
        return book.policy();
    }

    /**
     * What one claim asks of this node's GPUs: {@code milliPerGpu} (1..1000; 1000 on each of several GPUs for whole
     * GPUs) and the memory quota per GPU (0: the sharing policy's default, the whole memory for whole GPUs).
     *
     * @param claimUid the ResourceClaim's UID
     * @param namespace the claim's namespace
     * @param claimName the claim's name
     * @param podUid the pod it is reserved for ("" when none is known yet)
     * @param pod that pod's name
     * @param tenant the tenant of the claim's pods (or namespace)
     */
    public record ClaimRequest(
            String claimUid,
            String namespace,
            String claimName,
            String podUid,
            String pod,
            String tenant,
            List<String> gpuUuids,
            int milliPerGpu,
            long memoryBytesPerGpu) {
        public ClaimRequest {
            gpuUuids = List.copyOf(gpuUuids);
            if (claimUid == null || claimUid.isEmpty()) {
                throw new IllegalArgumentException("a claim request needs the claim's UID");
            }
            if (gpuUuids.isEmpty()) {
                throw new IllegalArgumentException("claim " + claimUid + " asks for no GPU");
            }
            if (gpuUuids.size() > 1 && milliPerGpu != MilliGpu.PER_GPU) {
                throw new IllegalArgumentException("claim " + claimUid + " shares " + gpuUuids.size()
                        + " GPUs; a share below " + MilliGpu.PER_GPU + " stays on one GPU");
            }
        }

        AllocationClaim toAllocationClaim() {
            // the container is not known at prepare time (a claim may serve several); the claim names the owner
            return new AllocationClaim(
                    podUid, namespace, pod, "claim:" + claimName, tenant, memoryBytesPerGpu, claimUid);
        }
    }

    /**
     * Records the claim's allocation, or returns the one already recorded for this claim UID (a repeated prepare,
     * after a restart too: the ledger's checkpoint keeps it).
     *
     * @throws AdmissionRefusal.AntiAffinity another tenant holds (or has reserved) the GPU, or the node
     * @throws AdmissionRefusal.ReservedForOthers other pods' reservations hold the capacity
     * @throws LedgerException.InvalidRequest the device-plugin path holds the GPU; unknown GPU
     * @throws LedgerException.NoFit too few free slots
     * @throws LedgerException.StorageFailed the files could not be made
     */
    public Allocation admit(ClaimRequest request) throws LedgerException, AdmissionRefusal {
        // one prepare at a time: two of the same claim (pods sharing it) must not both pick slots; kubelet's
        // prepares are rare and short next to Allocates, which never wait for this lock
        synchronized (prepares) {
            return admitOne(request);
        }
    }

    private final Object prepares = new Object();

    private Allocation admitOne(ClaimRequest request) throws LedgerException, AdmissionRefusal {
        List<Allocation> existing = ledger.draAllocations(request.claimUid());
        if (!existing.isEmpty()) {
            return existing.getFirst();
        }
        LedgerException last = null;
        for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
            List<String> ids = new ArrayList<>();
            for (String uuid : request.gpuUuids()) {
                ids.addAll(ledger.freeSlots(uuid, request.milliPerGpu()));
            }
            try (AllocationLedger.Pending pending = ledger.prepareDra(ids, request.toAllocationClaim())) {
                Object outcome = book.admit(admission -> check(admission, request, pending));
                if (outcome instanceof AdmissionRefusal refusal) {
                    log.warn(
                            "event=claim_refused claim={}/{} uid={} pod={} tenant={} gpus={} reason=\"{}\"",
                            request.namespace(),
                            request.claimName(),
                            request.claimUid(),
                            request.pod(),
                            request.tenant(),
                            request.gpuUuids(),
                            refusal.getMessage());
                    if (!request.pod().isEmpty()) {
                        events.onPod(
                                request.namespace(),
                                request.pod(),
                                request.podUid(),
                                "GpuClaimRefused",
                                refusal.getMessage());
                    } else {
                        events.onNode("GpuClaimRefused", refusal.getMessage());
                    }
                    throw refusal;
                }
                if (outcome instanceof LedgerException.InvalidRequest slotTaken
                        && slotTaken.getMessage().startsWith("slot ")) {
                    last = slotTaken;
                    continue;
                }
                if (outcome instanceof LedgerException failure) {
                    throw failure;
                }
                Allocation made = (Allocation) outcome;
                log.info(
                        "event=claim_admitted claim={}/{} uid={} pod={} tenant={} gpus={} milli_per_gpu={} "
                                + "memory_per_gpu={} allocation={} policy={}",
                        request.namespace(),
                        request.claimName(),
                        request.claimUid(),
                        request.pod(),
                        request.tenant(),
                        request.gpuUuids(),
                        request.milliPerGpu(),
                        request.memoryBytesPerGpu(),
                        made.id(),
                        policy().configName());
                return made;
            }
        }
        throw Objects.requireNonNull(last);
    }

    /** Under the book's lock, memory only: tenancy and capacity against the node as it is, then the commit. */
    private Object check(ReservationBook.Admission admission, ClaimRequest request, AllocationLedger.Pending pending) {
        NodeUsage usage = admission.usage(Set.of());
        for (String uuid : request.gpuUuids()) {
            Optional<GpuUsage> found = usage.gpu(uuid);
            if (found.isEmpty()) {
                return new LedgerException.InvalidRequest("GPU " + uuid + " is not one this node shares");
            }
            GpuUsage gpu = found.get();
            String otherPlugin = withdrawals.of(GpuWithdrawals.OTHER_PLUGIN).get(uuid);
            if (otherPlugin != null) {
                return new AdmissionRefusal.Withdrawn("claim " + request.namespace() + "/" + request.claimName()
                        + ": GPU " + uuid + " on node " + nodeName + " is withdrawn from sharing: " + otherPlugin);
            }
            List<Allocation> devicePlugin = ledger.devicePluginAllocationsOn(uuid);
            if (!devicePlugin.isEmpty()) {
                // checked first and whatever the policy: the ledger refuses it at commit anyway
                return new LedgerException.InvalidRequest("GPU " + uuid + " is given out by the device-plugin path "
                        + "(allocations "
                        + devicePlugin.stream().map(Allocation::id).toList() + "); a GPU serves "
                        + "one path at a time, so claim " + request.namespace() + "/" + request.claimName()
                        + " cannot use it until they are released");
            }
            Optional<String> tenancy =
                    policy().refusal(request.tenant(), uuid, gpu.tenants(), nodeName, usage.nodeTenants());
            if (tenancy.isPresent()) {
                return new AdmissionRefusal.AntiAffinity("claim " + request.namespace() + "/" + request.claimName()
                        + " (tenant '" + request.tenant() + "'): " + tenancy.get());
            }
            long memory = request.memoryBytesPerGpu() > 0
                    ? request.memoryBytesPerGpu()
                    : MilliGpu.defaultMemory(request.milliPerGpu(), gpu.gpu().memoryBytes());
            String shortfall = gpu.capacityShortfall(request.milliPerGpu(), memory);
            if (shortfall != null) {
                return new AdmissionRefusal.ReservedForOthers("claim " + request.namespace() + "/"
                        + request.claimName() + ": GPU " + uuid + " on node " + nodeName + ": " + shortfall + " ("
                        + gpu.describe() + ")");
            }
        }
        try {
            return pending.commit();
        } catch (LedgerException e) {
            return e;
        }
    }
}
