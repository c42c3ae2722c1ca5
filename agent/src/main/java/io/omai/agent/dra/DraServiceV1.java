package io.omai.agent.dra;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.omai.agent.dra.v1.Claim;
import io.omai.agent.dra.v1.DRAPluginGrpc;
import io.omai.agent.dra.v1.Device;
import io.omai.agent.dra.v1.NodePrepareResourceResponse;
import io.omai.agent.dra.v1.NodePrepareResourcesRequest;
import io.omai.agent.dra.v1.NodePrepareResourcesResponse;
import io.omai.agent.dra.v1.NodeUnprepareResourceResponse;
import io.omai.agent.dra.v1.NodeUnprepareResourcesRequest;
import io.omai.agent.dra.v1.NodeUnprepareResourcesResponse;
import java.util.List;

/** kubelet's DRA API v1 ({@code k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin}): messages to and from {@link DraService}. */
final class DraServiceV1 extends DRAPluginGrpc.DRAPluginImplBase {
    private final DraService service;

    DraServiceV1(DraService service) {
        this.service = service;
    }

    @Override
    public void nodePrepareResources(
            NodePrepareResourcesRequest request, StreamObserver<NodePrepareResourcesResponse> response) {
        if (request.getClaimsCount() > DraService.MAX_CLAIMS_PER_CALL) {
            response.onError(Status.INVALID_ARGUMENT
                    .withDescription(DraService.tooMany(request.getClaimsCount()))
                    .asRuntimeException());
            return;
        }
        NodePrepareResourcesResponse.Builder answer = NodePrepareResourcesResponse.newBuilder();
        service.prepare(refs(request.getClaimsList())).forEach((uid, outcome) -> {
            NodePrepareResourceResponse.Builder claim = NodePrepareResourceResponse.newBuilder();
            if (!outcome.error().isEmpty()) {
                claim.setError(outcome.error());
            } else {
                for (ClaimPreparer.PreparedDevice device : outcome.devices()) {
                    claim.addDevices(Device.newBuilder()
                            .addRequestNames(device.request())
                            .setPoolName(device.pool())
                            .setDeviceName(device.device())
                            .addAllCdiDeviceIds(device.cdiDeviceIds()));
                }
            }
            answer.putClaims(uid, claim.build());
        });
        response.onNext(answer.build());
        response.onCompleted();
    }

    @Override
    public void nodeUnprepareResources(
            NodeUnprepareResourcesRequest request, StreamObserver<NodeUnprepareResourcesResponse> response) {
        if (request.getClaimsCount() > DraService.MAX_CLAIMS_PER_CALL) {
            response.onError(Status.INVALID_ARGUMENT
                    .withDescription(DraService.tooMany(request.getClaimsCount()))
                    .asRuntimeException());
            return;
        }
        NodeUnprepareResourcesResponse.Builder answer = NodeUnprepareResourcesResponse.newBuilder();
        service.unprepare(refs(request.getClaimsList()))
                .forEach((uid, error) -> answer.putClaims(
                        uid,
                        NodeUnprepareResourceResponse.newBuilder()
                                .setError(error)
                                .build()));
        response.onNext(answer.build());
        response.onCompleted();
    }

    private static List<ClaimRef> refs(List<Claim> claims) {
        return claims.stream()
                .map(c -> new ClaimRef(c.getNamespace(), c.getUid(), c.getName()))
                .toList();
    }
}
