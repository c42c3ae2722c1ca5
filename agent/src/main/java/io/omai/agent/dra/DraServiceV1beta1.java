package io.omai.agent.dra;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import io.grpc.stub.StreamObserver;
import io.omai.agent.dra.v1beta1.DRAPluginGrpc;
import io.omai.agent.dra.v1beta1.NodePrepareResourcesRequest;
import io.omai.agent.dra.v1beta1.NodePrepareResourcesResponse;
import io.omai.agent.dra.v1beta1.NodeUnprepareResourcesRequest;
import io.omai.agent.dra.v1beta1.NodeUnprepareResourcesResponse;

/**
 * kubelet's DRA API v1beta1 ({@code k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin}). Its messages are v1's field for
 * field (the published protos differ only in their package), so each request is re-read as v1, answered by {@link
 * DraServiceV1}, and its answer re-read as v1beta1: one implementation, no second mapping to keep in step.
 */
final class DraServiceV1beta1 extends DRAPluginGrpc.DRAPluginImplBase {
    private final DraServiceV1 v1;

    DraServiceV1beta1(DraServiceV1 v1) {
        this.v1 = v1;
    }

    @Override
    public void nodePrepareResources(
            NodePrepareResourcesRequest request, StreamObserver<NodePrepareResourcesResponse> response) {
        v1.nodePrepareResources(
                reread(request, io.omai.agent.dra.v1.NodePrepareResourcesRequest.parser()),
                answerAs(response, NodePrepareResourcesResponse.parser()));
    }

    @Override
    public void nodeUnprepareResources(
            NodeUnprepareResourcesRequest request, StreamObserver<NodeUnprepareResourcesResponse> response) {
        v1.nodeUnprepareResources(
                reread(request, io.omai.agent.dra.v1.NodeUnprepareResourcesRequest.parser()),
                answerAs(response, NodeUnprepareResourcesResponse.parser()));
    }

    private static <T> T reread(MessageLite message, Parser<T> as) {
        try {
            return as.parseFrom(message.toByteString());
        } catch (InvalidProtocolBufferException e) {
            // only if the two protos drifted apart; DraEndToEndTest's v1beta1-only kubelet would show it
            throw new IllegalStateException("DRA v1 and v1beta1 messages no longer match: " + e.getMessage(), e);
        }
    }

    /** The v1 service's answers, passed on as v1beta1 messages. */
    private static <A extends MessageLite, B> StreamObserver<A> answerAs(StreamObserver<B> caller, Parser<B> as) {
        return new StreamObserver<>() {
            @Override
            public void onNext(A answer) {
                caller.onNext(reread(answer, as));
            }

            @Override
            public void onError(Throwable failure) {
                caller.onError(failure);
            }

            @Override
            public void onCompleted() {
                caller.onCompleted();
            }
        };
    }
}
