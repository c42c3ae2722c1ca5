package io.omai.agent.schedapi;

import static io.omai.agent.schedapi.NodeFixtures.GIB;
import static io.omai.agent.schedapi.NodeFixtures.uuid;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.agent.schedapi.v1.WatchNodeStateRequest;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class WatchNodeStateTest {
    private final InProcessSchedulerApi api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);

    @AfterEach
    void close() {
        api.close();
    }

    /** Collects a watch stream; keeps the call so a test can cancel it. */
    private static final class Recorder implements ClientResponseObserver<WatchNodeStateRequest, NodeState> {
        final LinkedBlockingQueue<NodeState> states = new LinkedBlockingQueue<>();
        volatile ClientCallStreamObserver<WatchNodeStateRequest> call;
        volatile boolean completed;

        @Override
        public void beforeStart(ClientCallStreamObserver<WatchNodeStateRequest> requestStream) {
            call = requestStream;
        }

        @Override
        public void onNext(NodeState state) {
            states.add(state);
        }

        @Override
        public void onError(Throwable t) {
            // cancelled by the test, or the server went away; the assertions look at the states
        }

        @Override
        public void onCompleted() {
            completed = true;
        }

        NodeState next() throws InterruptedException {
            NodeState state = states.poll(5, TimeUnit.SECONDS);
            assertThat(state).as("a state within 5 s").isNotNull();
            return state;
        }
    }

    private Recorder watch(WatchNodeStateRequest request) {
        var recorder = new Recorder();
        api.async.watchNodeState(request, recorder);
        return recorder;
    }

    private NodeState current() {
        return api.blocking.getNodeState(GetNodeStateRequest.getDefaultInstance());
    }

    @Test
    void watch_sendsTheCurrentStateFirst() throws InterruptedException {
        Recorder recorder = watch(WatchNodeStateRequest.getDefaultInstance());

        assertThat(recorder.next()).isEqualTo(current());
    }

    @Test
    void watch_resumingFromTheCurrentGenerationWaitsForTheNextChange() throws InterruptedException {
        NodeState now = current();
        Recorder recorder = watch(WatchNodeStateRequest.newBuilder()
                .setAfterGeneration(now.getGeneration())
                .setIncarnation(now.getIncarnation())
                .build());
        // direct executors: had the server sent anything, it would already be here
        assertThat(recorder.states).isEmpty();

        api.inventory.allocate(uuid(0), "team-a", 300, GIB);

        NodeState changed = recorder.next();
        assertThat(changed.getGeneration()).isGreaterThan(now.getGeneration());
        assertThat(changed.getGpus(0).getMilliAllocated()).isEqualTo(300);
    }

    @Test
    void watch_resumingFromAnOlderGenerationGetsTheCurrentStateAtOnce() throws InterruptedException {
        NodeState old = current();
        api.inventory.allocate(uuid(0), "team-a", 300, GIB);

        Recorder recorder = watch(WatchNodeStateRequest.newBuilder()
                .setAfterGeneration(old.getGeneration())
                .setIncarnation(old.getIncarnation())
                .build());

        assertThat(recorder.next().getGpus(0).getMilliAllocated()).isEqualTo(300);
    }

    @Test
    void watch_anotherIncarnationGetsTheCurrentStateWhateverItsGeneration() throws InterruptedException {
        Recorder recorder = watch(WatchNodeStateRequest.newBuilder()
                .setAfterGeneration(1_000_000)
                .setIncarnation("agent-before-restart")
                .build());

        assertThat(recorder.next()).isEqualTo(current());
    }

    @Test
    void watch_negativeGenerationIsInvalidArgument() {
        var failures = new LinkedBlockingQueue<Throwable>();
        api.async.watchNodeState(
                WatchNodeStateRequest.newBuilder().setAfterGeneration(-3).build(), new StreamObserver<>() {
                    @Override
                    public void onNext(NodeState state) {
                        failures.add(new AssertionError("got a state for a malformed request"));
                    }

                    @Override
                    public void onError(Throwable t) {
                        failures.add(t);
                    }

                    @Override
                    public void onCompleted() {}
                });

        assertThat(failures.poll()).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).startsWith("after_generation: -3 is negative");
        });
        assertThat(api.server.publisher().observerCount()).isZero();
    }

    @Test
    void watch_reservationsAndTheirExpiryArePublished() throws InterruptedException {
        Recorder recorder = watch(WatchNodeStateRequest.getDefaultInstance());
        recorder.next();

        api.blocking.reserve(ReserveRequest.newBuilder()
                .setIdempotencyKey("k1")
                .setPodUid("pod-1")
                .setTenant("team-a")
                .setLeaseSeconds(5)
                .addContainers(ContainerAssignment.newBuilder()
                        .setName("main")
                        .addGpuUuids(uuid(0))
                        .setMilli(500))
                .build());
        assertThat(recorder.next().getReservationsCount()).isEqualTo(1);

        api.clock.advance(Duration.ofSeconds(5));
        // the lease sweeper runs every 250 ms on its own thread
        NodeState afterExpiry = recorder.next();
        assertThat(afterExpiry.getReservationsCount()).isZero();
        assertThat(afterExpiry.getGpus(0).getMilliReserved()).isZero();
    }

    @Test
    void watch_cancelRemovesTheObserver() throws InterruptedException {
        Recorder recorder = watch(WatchNodeStateRequest.getDefaultInstance());
        recorder.next();
        assertThat(api.server.publisher().observerCount()).isEqualTo(1);

        recorder.call.cancel("scheduler shutting down", null);

        await().atMost(Duration.ofSeconds(5)).until(() -> api.server.publisher().observerCount() == 0);
        api.inventory.allocate(uuid(0), "team-a", 300, GIB);
        assertThat(recorder.states).isEmpty();
    }

    @Test
    void watch_serverShutdownCompletesTheStream() throws InterruptedException {
        Recorder recorder = watch(WatchNodeStateRequest.getDefaultInstance());
        recorder.next();

        api.server.publisher().close();

        assertThat(recorder.completed).isTrue();
    }

    @Test
    void watch_slowClientGetsOnlyTheLatestState() {
        var publisher = api.server.publisher();
        var call = new NotReadyCall();
        NodeStateWatch.start(WatchNodeStateRequest.getDefaultInstance(), call, publisher);
        assertThat(call.sent).isEmpty();

        for (int i = 0; i < 5; i++) {
            api.inventory.allocate(uuid(0), "team-a", 100, GIB);
        }
        call.becomeReady();

        assertThat(call.sent)
                .singleElement()
                .satisfies(state ->
                        assertThat(state.getGpus(0).getMilliAllocated()).isEqualTo(500));
    }

    /** A server call whose transport is not ready until told, as with a client that stopped reading. */
    private static final class NotReadyCall extends ServerCallStreamObserver<NodeState> {
        final List<NodeState> sent = new ArrayList<>();
        private boolean ready;
        private Runnable onReady = () -> {};

        void becomeReady() {
            ready = true;
            onReady.run();
        }

        @Override
        public boolean isReady() {
            return ready;
        }

        @Override
        public void setOnReadyHandler(Runnable handler) {
            onReady = handler;
        }

        @Override
        public void onNext(NodeState value) {
            sent.add(value);
        }

        @Override
        public boolean isCancelled() {
            return false;
        }

        @Override
        public void setOnCancelHandler(Runnable handler) {}

        @Override
        public void setCompression(String compression) {}

        @Override
        public void disableAutoInboundFlowControl() {}

        @Override
        public void request(int count) {}

        @Override
        public void setMessageCompression(boolean enable) {}

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {}
    }
}
