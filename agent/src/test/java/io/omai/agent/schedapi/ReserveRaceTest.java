package io.omai.agent.schedapi;

import static io.omai.agent.schedapi.NodeFixtures.GIB;
import static io.omai.agent.schedapi.NodeFixtures.uuid;
import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.ReleaseRequest;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.placement.AntiAffinityPolicy;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Concurrent Reserve calls through the gRPC stack: the last capacity goes to exactly one caller. */
class ReserveRaceTest {
    private static final int THREADS = 16;
    private static final int ROUNDS = 30;

    private final InProcessSchedulerApi api = new InProcessSchedulerApi(AntiAffinityPolicy.GPU);
    private final ExecutorService pool = Executors.newFixedThreadPool(THREADS);

    @AfterEach
    void close() {
        pool.shutdownNow();
        api.close();
    }

    @Test
    void race_sixteenSchedulersForTheLastGpuExactlyOneWins() throws Exception {
        for (int i = 0; i < 7; i++) {
            api.inventory.allocate(uuid(i), "team-x", 1000, 80 * GIB);
        }
        for (int round = 0; round < ROUNDS; round++) {
            List<Status.Code> codes = raceFor(round, uuid(7), 1000);

            assertThat(codes)
                    .as("round %d", round)
                    .filteredOn(code -> code == Status.Code.OK)
                    .hasSize(1);
            // the losers are of other tenants than the winner: the tenant refusal is reported before the capacity
            // one, since freeing capacity would not admit them
            assertThat(codes)
                    .as("round %d", round)
                    .filteredOn(code -> code != Status.Code.OK)
                    .containsOnly(Status.Code.FAILED_PRECONDITION);
            assertThat(api.book.outstanding()).hasSize(1);
            api.blocking.release(ReleaseRequest.newBuilder()
                    .setPodUid(api.book.outstanding().getFirst().podUid())
                    .build());
        }
    }

    @Test
    void race_sharesOfTheLastMilliNeverOverbook() throws Exception {
        for (int i = 0; i < 7; i++) {
            api.inventory.allocate(uuid(i), "team-x", 1000, 80 * GIB);
        }
        // 16 callers of one tenant ask for 300 milli each: 3 fit in 1000, never 4
        List<Status.Code> codes = raceFor(0, uuid(7), 300);

        assertThat(codes).filteredOn(code -> code == Status.Code.OK).hasSize(3);
        assertThat(api.book.outstanding()).hasSize(3);
    }

    private List<Status.Code> raceFor(int round, String gpu, int milli) throws Exception {
        var start = new CountDownLatch(1);
        var outcomes = new ArrayList<Future<Status.Code>>();
        for (int t = 0; t < THREADS; t++) {
            String id = round + "-" + t;
            // one tenant for shares (so anti-affinity does not decide), one per caller for whole GPUs
            String tenant = milli < 1000 ? "team-a" : "team-" + t;
            ReserveRequest request = ReserveRequest.newBuilder()
                    .setIdempotencyKey("key-" + id)
                    .setPodUid("pod-" + id)
                    .setTenant(tenant)
                    .setLeaseSeconds(60)
                    .addContainers(ContainerAssignment.newBuilder()
                            .setName("main")
                            .addGpuUuids(gpu)
                            .setMilli(milli))
                    .build();
            outcomes.add(pool.submit(() -> {
                start.await();
                try {
                    api.blocking.reserve(request);
                    return Status.Code.OK;
                } catch (StatusRuntimeException e) {
                    return e.getStatus().getCode();
                }
            }));
        }
        start.countDown();
        var codes = new ArrayList<Status.Code>();
        for (Future<Status.Code> outcome : outcomes) {
            codes.add(outcome.get());
        }
        return codes;
    }
}
