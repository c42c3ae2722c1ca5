package io.omai.agent.deviceplugin;

import io.grpc.stub.StreamObserver;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.AllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerPreferredAllocationRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerPreferredAllocationResponse;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginOptions;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.deviceplugin.v1beta1.PreStartContainerRequest;
import io.omai.agent.deviceplugin.v1beta1.PreStartContainerResponse;
import io.omai.agent.deviceplugin.v1beta1.PreferredAllocationRequest;
import io.omai.agent.deviceplugin.v1beta1.PreferredAllocationResponse;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.LedgerException;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.tenancy.AdmissionGate;
import io.omai.agent.tenancy.AdmissionRefusal;
import io.omai.agent.tenancy.CapacityModel;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.LedgerNodeCapacity;
import io.omai.agent.tenancy.NodePods;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kubelet-facing DevicePlugin service for milli-GPU shares. Protocol only: decisions are the ledger's,
 * container edits {@link ContainerEdits}', refusals are mapped by {@link GrpcStatusMapper}. Handlers never throw.
 */
public final class DevicePluginService extends DevicePluginGrpc.DevicePluginImplBase {
    private static final Logger log = LoggerFactory.getLogger(DevicePluginService.class);

    static final DevicePluginOptions OPTIONS = DevicePluginOptions.newBuilder()
            .setGetPreferredAllocationAvailable(true)
            .setPreStartRequired(false)
            .build();

    private final AdmissionGate gate;
    private final ContainerEdits edits;
    private final DeviceListPublisher devices;

    /** Without tenancy: every allocation is for an unknown pod, reservations are not consulted. */
    DevicePluginService(AllocationLedger ledger, ContainerEdits edits, DeviceListPublisher devices) {
        this(
                new AdmissionGate(
                        "local",
                        ledger,
                        new ReservationBook(
                                (CapacityModel) departed ->
                                        LedgerNodeCapacity.of("local", ledger, new GpuWithdrawals(), departed),
                                AntiAffinityPolicy.NONE,
                                Clock.systemUTC()),
                        NodePods.NONE,
                        new GpuWithdrawals(),
                        Duration.ZERO),
                edits,
                devices);
    }

    public DevicePluginService(AdmissionGate gate, ContainerEdits edits, DeviceListPublisher devices) {
        this.gate = gate;
        this.edits = edits;
        this.devices = devices;
    }

    @Override
    public void getDevicePluginOptions(Empty request, StreamObserver<DevicePluginOptions> response) {
        response.onNext(OPTIONS);
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
        if (request.getContainerRequestsCount() > AdmissionGate.MAX_CONTAINERS_PER_REQUEST) {
            response.onError(GrpcStatusMapper.invalidRequest("container_requests has "
                    + request.getContainerRequestsCount() + " containers; at most "
                    + AdmissionGate.MAX_CONTAINERS_PER_REQUEST + " are accepted in one request (kubelet sends one)"));
            return;
        }
        PreferredAllocationResponse.Builder answer = PreferredAllocationResponse.newBuilder();
        for (ContainerPreferredAllocationRequest container : request.getContainerRequestsList()) {
            try {
                List<MilliGpuId> chosen = gate.preferredAllocation(
                        container.getAvailableDeviceIDsList(),
                        container.getMustIncludeDeviceIDsList(),
                        container.getAllocationSize());
                answer.addContainerResponses(ContainerPreferredAllocationResponse.newBuilder()
                        .addAllDeviceIDs(chosen.stream().map(MilliGpuId::id).toList()));
            } catch (LedgerException e) {
                log.warn(
                        "event=preferred_allocation_refused size={} available={} reason=\"{}\"",
                        container.getAllocationSize(),
                        container.getAvailableDeviceIDsCount(),
                        e.getMessage());
                response.onError(GrpcStatusMapper.toException(e));
                return;
            } catch (AdmissionRefusal e) {
                log.warn(
                        "event=preferred_allocation_refused size={} available={} reason=\"{}\"",
                        container.getAllocationSize(),
                        container.getAvailableDeviceIDsCount(),
                        e.getMessage());
                response.onError(GrpcStatusMapper.toException(e));
                return;
            }
        }
        response.onNext(answer.build());
        response.onCompleted();
    }

    @Override
    public void allocate(AllocateRequest request, StreamObserver<AllocateResponse> response) {
        int containers = request.getContainerRequestsCount();
        if (containers > AdmissionGate.MAX_CONTAINERS_PER_REQUEST) {
            // refused before the IDs are even read: a huge request must cost nothing
            String why = "container_requests has " + containers + " containers; at most "
                    + AdmissionGate.MAX_CONTAINERS_PER_REQUEST + " are accepted in one Allocate (kubelet sends one)";
            log.warn("event=allocate_refused containers={} reason=\"{}\"", containers, why);
            response.onError(GrpcStatusMapper.invalidRequest(why));
            return;
        }
        List<List<String>> ids = request.getContainerRequestsList().stream()
                .map(ContainerAllocateRequest::getDevicesIdsList)
                .map(List::copyOf)
                .toList();
        List<Allocation> made;
        try {
            // all or nothing: a refusal of any container leaves the ledger and the reservations as they were
            made = gate.allocateAll(ids);
        } catch (LedgerException e) {
            log.warn(
                    "event=allocate_refused containers={} devices={} reason=\"{}\"",
                    containers,
                    ids.stream().mapToInt(List::size).sum(),
                    e.getMessage());
            response.onError(GrpcStatusMapper.toException(e));
            return;
        } catch (AdmissionRefusal e) {
            log.warn(
                    "event=allocate_refused containers={} devices={} reason=\"{}\"",
                    containers,
                    ids.stream().mapToInt(List::size).sum(),
                    e.getMessage());
            response.onError(GrpcStatusMapper.toException(e));
            return;
        }
        AllocateResponse.Builder answer = AllocateResponse.newBuilder();
        for (Allocation allocation : made) {
            answer.addContainerResponses(edits.forAllocation(allocation));
            // The ledger logs the allocation once, when it is created; repeats are routine.
            log.debug(
                    "event=allocate allocation={} owner=\"{}\" gpus={}",
                    allocation.id(),
                    allocation.owner(),
                    allocation.milliPerGpu());
        }
        response.onNext(answer.build());
        response.onCompleted();
    }

    @Override
    public void preStartContainer(
            PreStartContainerRequest request, StreamObserver<PreStartContainerResponse> response) {
        // Not requested (pre_start_required=false); answer kindly if a kubelet calls anyway.
        response.onNext(PreStartContainerResponse.getDefaultInstance());
        response.onCompleted();
    }
}
