package io.omai.agent.schedapi;

import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.schedapi.v1.ReleaseRequest;
import io.omai.agent.schedapi.v1.ReleaseResponse;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.agent.schedapi.v1.ReserveResponse;
import io.omai.agent.schedapi.v1.WatchNodeStateRequest;
import io.omai.agent.tenancy.Reservation;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.agent.tenancy.ReservationException;
import java.util.List;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code omai.scheduler.v1.NodeAgent} service: protocol only. Validation is {@link RequestValidator}'s,
 * placement {@link FitPlanner}'s, reservation state the {@link ReservationBook}'s; every failure goes through
 * {@link GrpcStatusMapper}, so handlers never throw.
 */
final class NodeAgentService extends NodeAgentGrpc.NodeAgentImplBase {
    private static final Logger log = LoggerFactory.getLogger(NodeAgentService.class);

    private final NodeInventory inventory;
    private final ReservationBook book;
    private final NodeStatePublisher publisher;
    private final RequestValidator validator;

    NodeAgentService(
            NodeInventory inventory, ReservationBook book, NodeStatePublisher publisher, RequestValidator validator) {
        this.inventory = inventory;
        this.book = book;
        this.publisher = publisher;
        this.validator = validator;
    }

    @Override
    public void getNodeState(GetNodeStateRequest request, StreamObserver<NodeState> response) {
        answer(response, publisher::current);
    }

    @Override
    public void watchNodeState(WatchNodeStateRequest request, StreamObserver<NodeState> response) {
        try {
            validator.checkWatch(request);
            NodeStateWatch.start(request, (ServerCallStreamObserver<NodeState>) response, publisher);
        } catch (RuntimeException e) {
            response.onError(GrpcStatusMapper.toStatus(e).asException());
        }
    }

    @Override
    public void fit(FitRequest request, StreamObserver<FitResponse> response) {
        answer(response, () -> {
            FitQuery query = validator.fitQuery(request);
            long generation = publisher.current().getGeneration();
            List<Reservation> counted = book.outstanding().stream()
                    .filter(reservation -> !query.ignoresPod(reservation.podUid()))
                    .toList();
            FitResult result = FitPlanner.plan(query, inventory.snapshot(), counted, book.policy());
            return ProtoMapping.fitResponse(result, generation);
        });
    }

    @Override
    public void reserve(ReserveRequest request, StreamObserver<ReserveResponse> response) {
        answer(response, () -> {
            Reservation reservation = book.reserve(validator.reservationRequest(request));
            log.info(
                    "reservation '{}' for pod {} (tenant {}) holds {} until {}",
                    reservation.idempotencyKey(),
                    reservation.podUid(),
                    reservation.tenant(),
                    reservation.containers(),
                    reservation.expiresAt());
            return ReserveResponse.newBuilder()
                    .setReservation(ProtoMapping.reservation(reservation))
                    .build();
        });
    }

    @Override
    public void release(ReleaseRequest request, StreamObserver<ReleaseResponse> response) {
        answer(response, () -> {
            RequestValidator.ReleaseTarget target = validator.releaseTarget(request);
            Reservation released = switch (target) {
                case RequestValidator.ReleaseTarget.ByPod(String podUid) ->
                    book.releaseByPod(podUid)
                            .orElseThrow(() -> new ReservationException.NoSuchReservation(
                                    "pod " + podUid + " has no live reservation (never made, released or expired)"));
                case RequestValidator.ReleaseTarget.ByKey(String key) ->
                    book.releaseByKey(key)
                            .orElseThrow(() -> new ReservationException.NoSuchReservation("no live reservation under "
                                    + "idempotency key '" + key + "' (never made, released or expired)"));
            };
            log.info("reservation '{}' for pod {} released", released.idempotencyKey(), released.podUid());
            return ReleaseResponse.newBuilder()
                    .setReleased(ProtoMapping.reservation(released))
                    .build();
        });
    }

    private static <T> void answer(StreamObserver<T> response, Supplier<T> handler) {
        T result;
        try {
            result = handler.get();
        } catch (RuntimeException e) {
            response.onError(GrpcStatusMapper.toStatus(e).asException());
            return;
        }
        response.onNext(result);
        response.onCompleted();
    }
}
