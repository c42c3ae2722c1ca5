package io.omai.agent.schedapi;

import static io.omai.agent.schedapi.NodeFixtures.GIB;
import static io.omai.agent.schedapi.NodeFixtures.uuid;

import io.grpc.ManagedChannel;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.ContainerRequirement;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Clock;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Fit through the whole service (stub, protobuf, validation, expression cache, planner) over grpc's in-process
 * transport with direct executors: what a scheduler pays per node minus the network. The node has 8 GPUs, some
 * partly allocated by two tenants, and a few outstanding reservations, so the planner and the expression see
 * mixed load. Run with -Pbench (see docs/benchmarks.md).
 */
@State(Scope.Benchmark)
public class FitBenchmark {
    static final String EXPRESSION = "device.model.startsWith('NVIDIA H100') && device.memory_free >= quantity('20Gi')"
            + " && device.attributes['compute_capability'] == '9.0' && !('nvlink' in device.tags)";

    private SchedulerApiServer server;
    private ManagedChannel channel;
    private NodeAgentGrpc.NodeAgentBlockingStub stub;
    private FitRequest plain;
    private FitRequest withExpression;

    @Setup(Level.Trial)
    public void start() {
        var inventory = new StaticNodeInventory(NodeFixtures.eightGpus());
        inventory.allocate(uuid(0), "team-a", 500, 40 * GIB);
        inventory.allocate(uuid(1), "team-b", 250, 20 * GIB);
        inventory.allocate(uuid(4), "team-a", 750, 60 * GIB);
        inventory.allocate(uuid(5), "team-b", 1000, 80 * GIB);
        // leases far beyond the run, so the reservations stay while the benchmark measures
        var book = new ReservationBook(inventory::snapshot, AntiAffinityPolicy.GPU, Clock.systemUTC());
        String name = InProcessServerBuilder.generateName();
        server = new SchedulerApiServer(
                        InProcessServerBuilder.forName(name).directExecutor(),
                        inventory,
                        book,
                        new ClientPolicy.AnyClient())
                .start();
        channel = InProcessChannelBuilder.forName(name).directExecutor().build();
        stub = NodeAgentGrpc.newBlockingStub(channel);
        stub.reserve(reservation("k1", "pod-1", "team-a", uuid(0), 200));
        stub.reserve(reservation("k2", "pod-2", "team-c", uuid(6), 300));

        ContainerRequirement share =
                ContainerRequirement.newBuilder().setName("main").setMilli(250).build();
        plain = FitRequest.newBuilder().setTenant("team-a").addContainers(share).build();
        withExpression = FitRequest.newBuilder()
                .setTenant("team-a")
                .addContainers(share.toBuilder().setExpression(EXPRESSION))
                .build();
        if (!stub.fit(plain).getFeasible() || !stub.fit(withExpression).getFeasible()) {
            throw new IllegalStateException("benchmark node does not fit the benchmark pod; fix the fixture");
        }
    }

    private static ReserveRequest reservation(String key, String pod, String tenant, String gpu, int milli) {
        return ReserveRequest.newBuilder()
                .setIdempotencyKey(key)
                .setPodUid(pod)
                .setTenant(tenant)
                .setLeaseSeconds(3600)
                .addContainers(ContainerAssignment.newBuilder()
                        .setName("main")
                        .addGpuUuids(gpu)
                        .setMilli(milli))
                .build();
    }

    @TearDown(Level.Trial)
    public void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.close();
    }

    @Benchmark
    public FitResponse fitWithoutExpression() {
        return stub.fit(plain);
    }

    @Benchmark
    public FitResponse fitWithExpression() {
        return stub.fit(withExpression);
    }
}
