package io.omai.agent.tenancy;

import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.HeldDevices;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.MilliGpu;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A node for tenancy tests: a real ledger on fake GPUs, a reservation book, the pods "the API server" shows and
 * a kubelet that admits containers as the real one does (candidates = IDs no container holds; the plugin's
 * preference; Allocate; then PodResources records the container).
 */
final class TenancyNode implements AutoCloseable {
    static final String NODE = "node-a";
    static final long GPU_MEMORY = 80L << 30;

    final MutableClock clock = new MutableClock(Instant.parse("2026-03-01T10:00:00Z"));
    final AllocationLedger ledger;
    final ReservationBook book;
    final GpuWithdrawals withdrawals = new GpuWithdrawals();
    final Pods pods = new Pods();
    final AdmissionGate gate;
    /** What kubelet believes containers hold: "namespace/pod/container" → IDs. */
    final Map<String, List<String>> held = new LinkedHashMap<>();

    /** The pods the fake API server shows. */
    static final class Pods implements NodePods {
        final Map<String, PodInfo> byUid = new ConcurrentHashMap<>();
        volatile boolean enabled = true;

        @Override
        public boolean enabled() {
            return enabled;
        }

        @Override
        public Collection<PodInfo> pods() {
            return List.copyOf(byUid.values());
        }

        void put(PodInfo pod) {
            byUid.put(pod.uid(), pod);
        }

        void running(String uid) {
            PodInfo pod = byUid.get(uid);
            byUid.put(
                    uid,
                    new PodInfo(
                            pod.uid(),
                            pod.namespace(),
                            pod.name(),
                            pod.tenant(),
                            false,
                            pod.createdAt(),
                            pod.gpuContainers()));
        }
    }

    TenancyNode(Path state, int gpus, AntiAffinityPolicy policy) throws Exception {
        ledger = AllocationLedger.open(
                FakeNvml.gpus(gpus, GPU_MEMORY, 2), ConfigLoader.defaults().sharing(), state, clock);
        book = new ReservationBook(
                (CapacityModel) departed -> LedgerNodeCapacity.of(NODE, ledger, withdrawals, departed), policy, clock);
        gate = new AdmissionGate(NODE, ledger, book, pods, withdrawals, Duration.ZERO);
    }

    static String gpu(int index) {
        return FakeNvml.uuid(index);
    }

    /** A pending pod with one container {@code main} asking for {@code milli}, created {@code ageSeconds} ago. */
    PodInfo pendingPod(String uid, String namespace, String tenant, int milli, long ageSeconds) {
        PodInfo pod = new PodInfo(
                uid,
                namespace,
                "pod-" + uid,
                tenant,
                true,
                clock.instant().minusSeconds(ageSeconds),
                List.of(new PodInfo.GpuContainer("main", milli)));
        pods.put(pod);
        return pod;
    }

    Reservation reserve(PodInfo pod, int gpuIndex, int milli, long memoryBytes, Duration lease) {
        return book.reserve(new ReservationRequest(
                "key-" + pod.uid(),
                pod.uid(),
                pod.tenant(),
                List.of(new ContainerReservation("main", List.of(gpu(gpuIndex)), milli, memoryBytes, List.of())),
                lease));
    }

    /** kubelet's candidates: every ID of a healthy... (here: every) GPU that no container holds. */
    List<String> available() {
        Set<String> taken = new HashSet<>();
        held.values().forEach(taken::addAll);
        List<String> available = new ArrayList<>();
        for (var gpu : ledger.gpus()) {
            for (int slot = 0; slot < MilliGpu.PER_GPU; slot++) {
                String id = new MilliGpuId(gpu.uuid(), slot).id();
                if (!taken.contains(id)) {
                    available.add(id);
                }
            }
        }
        return available;
    }

    /** Admits the container as kubelet does; the pod then runs. */
    Allocation admit(PodInfo pod) throws LedgerException, AdmissionRefusal {
        int size = pod.gpuContainers().getFirst().milli();
        List<String> available = available();
        List<String> chosen = new ArrayList<>();
        for (MilliGpuId id : gate.preferredAllocation(available, List.of(), size)) {
            chosen.add(id.id());
        }
        for (String id : available) { // kubelet fills gaps arbitrarily
            if (chosen.size() == size) {
                break;
            }
            if (!chosen.contains(id)) {
                chosen.add(id);
            }
        }
        Allocation allocation = gate.allocate(chosen);
        held.put(pod.ref() + "/main", chosen);
        pods.running(pod.uid());
        return allocation;
    }

    /**
     * Admits container {@code owner} ("namespace/pod/container") as kubelet does, whoever the gate takes it for:
     * kubelet's candidates, the gate's preference, gaps filled arbitrarily, Allocate, then kubelet records it.
     */
    Allocation admit(String owner, int size) throws LedgerException, AdmissionRefusal {
        List<String> available = available();
        List<String> chosen = new ArrayList<>();
        for (MilliGpuId id : gate.preferredAllocation(available, List.of(), size)) {
            chosen.add(id.id());
        }
        for (String id : available) {
            if (chosen.size() == size) {
                break;
            }
            if (!chosen.contains(id)) {
                chosen.add(id);
            }
        }
        Allocation allocation = gate.allocate(chosen);
        held.put(owner, chosen);
        return allocation;
    }

    /**
     * The container is gone as kubelet sees it: its IDs are free at once, for the next admission. The agent is
     * not told (no reconcile): it learns from PodResources later, or from the next Allocate.
     */
    void depart(String owner) {
        if (held.remove(owner) == null) {
            throw new IllegalArgumentException("no container " + owner + " holds devices");
        }
    }

    /** The pod is deleted: kubelet forgets its devices and the ledger releases them at reconciliation. */
    void delete(PodInfo pod) throws LedgerException {
        pods.byUid.remove(pod.uid());
        held.remove(pod.ref() + "/main");
        book.releaseByPod(pod.uid());
        List<HeldDevices> now = new ArrayList<>();
        held.forEach((owner, ids) -> now.add(new HeldDevices(owner, ids)));
        ledger.reconcile(now, Duration.ZERO);
    }

    @Override
    public void close() {
        ledger.close();
    }
}
