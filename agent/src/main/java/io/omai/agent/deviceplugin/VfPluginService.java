package io.omai.agent.deviceplugin;

import io.grpc.StatusException;
import io.grpc.stub.StreamObserver;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.AllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.ContainerPreferredAllocationRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerPreferredAllocationResponse;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginOptions;
import io.omai.agent.deviceplugin.v1beta1.DeviceSpec;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.deviceplugin.v1beta1.PreStartContainerRequest;
import io.omai.agent.deviceplugin.v1beta1.PreStartContainerResponse;
import io.omai.agent.deviceplugin.v1beta1.PreferredAllocationRequest;
import io.omai.agent.deviceplugin.v1beta1.PreferredAllocationResponse;
import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.alloc.DeviceNode;
import io.omai.ibvf.alloc.GpuPlacement;
import io.omai.ibvf.alloc.VfAllocation;
import io.omai.ibvf.alloc.VfPreference.RankedVf;
import io.omai.ibvf.error.IbVfException;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.inventory.PfStatus;
import io.omai.ibvf.inventory.VfStatus;
import io.omai.ibvf.model.PciAddress;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kubelet-facing DevicePlugin service for InfiniBand/RoCE SR-IOV VFs ({@code omai.io/ib-vf}). Device IDs are
 * VF PCI addresses. GetPreferredAllocation ranks the candidates by closeness to the GPUs of the container being
 * admitted (same PCIe switch, then same NUMA node) when {@link GpuPairing} knows them, else spreads pods over the
 * HCAs with the most free VFs. Allocate resolves each VF's RDMA device nodes from sysfs at that moment (a rebind
 * renumbers {@code uverbsN}, so nothing is cached) and refuses unknown or unhealthy VFs. Handlers never throw.
 */
final class VfPluginService extends DevicePluginGrpc.DevicePluginImplBase {
    private static final Logger log = LoggerFactory.getLogger(VfPluginService.class);

    private final String resourceName;
    private final IbVfManager manager;
    private final Supplier<InventorySnapshot> inventory;
    private final VfAllocations allocations;
    private final GpuPairing pairing;
    private final DeviceListPublisher devices;

    VfPluginService(
            String resourceName,
            IbVfManager manager,
            Supplier<InventorySnapshot> inventory,
            VfAllocations allocations,
            GpuPairing pairing,
            DeviceListPublisher devices) {
        this.resourceName = resourceName;
        this.manager = manager;
        this.inventory = inventory;
        this.allocations = allocations;
        this.pairing = pairing;
        this.devices = devices;
    }

    /**
     * The variable naming every allocated VF, comma-separated, in the convention of the upstream SR-IOV device
     * plugin ({@code PCIDEVICE_} + the resource name upper-cased, with {@code .}, {@code /} and {@code -} as
     * {@code _}), which RDMA tooling and CNI plugins already read.
     */
    static String pciDeviceEnv(String resourceName) {
        return "PCIDEVICE_" + resourceName.toUpperCase(Locale.ROOT).replaceAll("[./-]", "_");
    }

    @Override
    public void getDevicePluginOptions(Empty request, StreamObserver<DevicePluginOptions> response) {
        response.onNext(DevicePluginService.OPTIONS);
        response.onCompleted();
    }

    @Override
    public void listAndWatch(Empty request, StreamObserver<ListAndWatchResponse> response) {
        devices.watch(response);
    }

    @Override
    public void getPreferredAllocation(
            PreferredAllocationRequest request, StreamObserver<PreferredAllocationResponse> response) {
        if (request.getContainerRequestsCount() == 0) {
            response.onError(
                    GrpcStatusMapper.invalidRequest("container_requests is empty; expected one request per container"));
            return;
        }
        InventorySnapshot now = inventory.get();
        PreferredAllocationResponse.Builder answer = PreferredAllocationResponse.newBuilder();
        for (ContainerPreferredAllocationRequest container : request.getContainerRequestsList()) {
            try {
                answer.addContainerResponses(ContainerPreferredAllocationResponse.newBuilder()
                        .addAllDeviceIDs(preferred(now, container).stream()
                                .map(PciAddress::value)
                                .toList()));
            } catch (StatusException e) {
                log.warn(
                        "event=vf_preferred_allocation_refused size={} available={} reason=\"{}\"",
                        container.getAllocationSize(),
                        container.getAvailableDeviceIDsCount(),
                        e.getStatus().getDescription());
                response.onError(e);
                return;
            }
        }
        response.onNext(answer.build());
        response.onCompleted();
    }

    private List<PciAddress> preferred(InventorySnapshot now, ContainerPreferredAllocationRequest request)
            throws StatusException {
        int size = request.getAllocationSize();
        List<PciAddress> advertised = VfDeviceList.managedVfs(now).stream()
                .map(vf -> vf.vf().address())
                .toList();
        List<PciAddress> available = addresses(request.getAvailableDeviceIDsList(), "available_deviceIDs", advertised);
        List<PciAddress> mustInclude =
                addresses(request.getMustIncludeDeviceIDsList(), "must_include_deviceIDs", advertised);
        if (size < 1) {
            throw GrpcStatusMapper.invalidRequest("allocation_size " + size + " asks for no VF; expected at least 1");
        }
        if (size > available.size()) {
            throw GrpcStatusMapper.invalidRequest("allocation_size " + size + " exceeds the " + available.size()
                    + " available VFs; expected at most that many");
        }
        if (mustInclude.size() > size) {
            throw GrpcStatusMapper.invalidRequest(mustInclude.size() + " must_include_deviceIDs exceed allocation_size "
                    + size + "; expected at most that many");
        }
        List<PciAddress> chosen = new ArrayList<>(mustInclude);
        List<PciAddress> candidates =
                available.stream().filter(vf -> !mustInclude.contains(vf)).toList();
        List<GpuPlacement> gpus = pairing.gpusOfContainerBeingAdmitted();
        List<PciAddress> ranked = gpus.isEmpty() ? balanced(now, candidates) : nearGpus(now, candidates, gpus);
        ranked.stream().limit(size - chosen.size()).forEach(chosen::add);
        log.debug("event=vf_preferred size={} gpus={} chosen={}", size, gpus, chosen);
        return chosen;
    }

    /** Closest to the container's GPUs first; a topology that cannot be read falls back to balancing. */
    private List<PciAddress> nearGpus(InventorySnapshot now, List<PciAddress> candidates, List<GpuPlacement> gpus) {
        try {
            return manager.preference().order(candidates, gpus).stream()
                    .map(RankedVf::vf)
                    .toList();
        } catch (IbVfException e) {
            log.warn(
                    "event=vf_topology_unreadable gpus={} error=\"{}\" detail=\"preferring by free VFs per HCA\"",
                    gpus,
                    e.getMessage());
            return balanced(now, candidates);
        }
    }

    /**
     * No GPU known: VFs of the PF with the most free candidates first (spreads pods over HCAs, and so over NUMA
     * nodes where each has its HCA; keeps a multi-VF request on one HCA where it fits), then PCI address order.
     */
    private static List<PciAddress> balanced(InventorySnapshot now, List<PciAddress> candidates) {
        Map<PciAddress, PciAddress> pfOf = new HashMap<>();
        for (PfStatus pf : now.pfs()) {
            pf.vfs().forEach(vf -> pfOf.put(vf.vf().address(), pf.pf().address()));
        }
        Map<PciAddress, Integer> freePerPf = new HashMap<>();
        candidates.forEach(vf -> freePerPf.merge(pfOf.getOrDefault(vf, vf), 1, Integer::sum));
        return candidates.stream()
                .sorted(Comparator.comparingInt((PciAddress vf) -> -freePerPf.get(pfOf.getOrDefault(vf, vf)))
                        .thenComparing(vf -> pfOf.getOrDefault(vf, vf))
                        .thenComparing(Comparator.naturalOrder()))
                .toList();
    }

    @Override
    public void allocate(AllocateRequest request, StreamObserver<AllocateResponse> response) {
        if (request.getContainerRequestsCount() == 0) {
            response.onError(
                    GrpcStatusMapper.invalidRequest("container_requests is empty; expected one request per container"));
            return;
        }
        InventorySnapshot now = inventory.get();
        Map<PciAddress, VfStatus> known = new HashMap<>();
        VfDeviceList.managedVfs(now).forEach(vf -> known.put(vf.vf().address(), vf));
        // Check every container before resolving any, so one bad container fails the call without side effects.
        List<List<PciAddress>> requested = new ArrayList<>();
        try {
            for (ContainerAllocateRequest container : request.getContainerRequestsList()) {
                requested.add(checkAllocatable(container.getDevicesIdsList(), known));
            }
            // recorded before the edits, atomically with the check against DRA claims: one VF, one path
            List<PciAddress> all = requested.stream().flatMap(List::stream).toList();
            java.util.Optional<String> claimed = allocations.allocateUnlessClaimed(all);
            if (claimed.isPresent()) {
                throw GrpcStatusMapper.unusableDevice(claimed.get());
            }
            AllocateResponse.Builder answer = AllocateResponse.newBuilder();
            try {
                for (List<PciAddress> vfs : requested) {
                    answer.addContainerResponses(containerEdits(vfs));
                }
            } catch (StatusException e) {
                allocations.undoAllocated(all);
                throw e;
            }
            response.onNext(answer.build());
            response.onCompleted();
        } catch (StatusException e) {
            log.warn(
                    "event=vf_allocate_refused devices={} reason=\"{}\"",
                    request.getContainerRequestsList().stream()
                            .flatMap(c -> c.getDevicesIdsList().stream())
                            .toList(),
                    e.getStatus().getDescription());
            response.onError(e);
        }
    }

    private List<PciAddress> checkAllocatable(List<String> ids, Map<PciAddress, VfStatus> known)
            throws StatusException {
        if (ids.isEmpty()) {
            throw GrpcStatusMapper.invalidRequest("devices_ids is empty; expected the VF PCI addresses to allocate");
        }
        List<PciAddress> vfs = addresses(ids, "devices_ids", known.keySet());
        for (PciAddress vf : vfs) {
            VfStatus status = known.get(vf);
            if (status == null) {
                throw GrpcStatusMapper.invalidRequest("VF " + vf + " is unknown: it is not one of the " + known.size()
                        + " VFs this node advertises as " + resourceName + " (removed, or never ours)");
            }
            if (!status.health().isHealthy()) {
                throw GrpcStatusMapper.unusableDevice("VF " + vf + " is " + status.health()
                        + "; expected a Healthy VF (kubelet offers only those; it may have just turned unhealthy)");
            }
        }
        return vfs;
    }

    /** Device specs and env for the container, from sysfs now. */
    private ContainerAllocateResponse containerEdits(List<PciAddress> vfs) throws StatusException {
        try {
            return containerEdits(manager, resourceName, vfs);
        } catch (IbVfException e) {
            throw GrpcStatusMapper.toException(e);
        }
    }

    /**
     * Device specs ({@code uverbsN} and {@code rdma_cm} of each VF, from sysfs now) and env of {@code vfs}, as the
     * plugin of {@code resourceName} answers them; also what a DRA claim holding them gets.
     */
    static ContainerAllocateResponse containerEdits(IbVfManager manager, String resourceName, List<PciAddress> vfs)
            throws IbVfException {
        Map<String, DeviceNode> nodes = new LinkedHashMap<>();
        Map<String, List<String>> env = new LinkedHashMap<>();
        for (PciAddress vf : vfs) {
            VfAllocation allocation = manager.allocationFor(vf);
            allocation
                    .deviceNodes()
                    .forEach(node -> nodes.putIfAbsent(node.containerPath(), node)); // rdma_cm is shared
            new TreeMap<>(allocation.env())
                    .forEach((name, value) ->
                            env.computeIfAbsent(name, k -> new ArrayList<>()).add(value));
            if (!allocation.rdmaCmAvailable()) {
                log.warn(
                        "event=vf_rdma_cm_missing vf={} detail=\"rdma_ucm is not loaded: RDMA-CM will not work in "
                                + "the container\"",
                        vf);
            }
            log.info(
                    "event=vf_allocated vf={} rdma={} devices={}",
                    vf,
                    allocation.rdmaDevice(),
                    allocation.deviceNodes().stream().map(DeviceNode::hostPath).toList());
        }
        ContainerAllocateResponse.Builder edits = ContainerAllocateResponse.newBuilder();
        nodes.values()
                .forEach(node -> edits.addDevices(DeviceSpec.newBuilder()
                        .setHostPath(node.hostPath())
                        .setContainerPath(node.containerPath())
                        .setPermissions(node.permissions())));
        env.forEach((name, values) -> edits.putEnvs(name, String.join(",", values)));
        edits.putEnvs(
                pciDeviceEnv(resourceName),
                String.join(",", vfs.stream().map(PciAddress::value).toList()));
        return edits.build();
    }

    /**
     * Parses device IDs: each must be a PCI address, each at most once. A refusal's example is a VF this node
     * advertises (a fixed example would name an address the node may not have).
     */
    private static List<PciAddress> addresses(Collection<String> ids, String field, Collection<PciAddress> advertised)
            throws StatusException {
        Set<PciAddress> parsed = new LinkedHashSet<>();
        for (String id : ids) {
            if (!PciAddress.isPciAddress(id)) {
                throw GrpcStatusMapper.invalidRequest(field + " has '" + id + "', which is not a VF PCI address; "
                        + "expected IDs this plugin advertised"
                        + advertised.stream()
                                .sorted()
                                .findFirst()
                                .map(vf -> ", such as " + vf)
                                .orElse(" (none now)"));
            }
            if (!parsed.add(PciAddress.of(id))) {
                throw GrpcStatusMapper.invalidRequest(field + " names " + id + " twice; expected each VF once");
            }
        }
        return new ArrayList<>(parsed);
    }

    @Override
    public void preStartContainer(
            PreStartContainerRequest request, StreamObserver<PreStartContainerResponse> response) {
        response.onNext(PreStartContainerResponse.getDefaultInstance());
        response.onCompleted();
    }
}
