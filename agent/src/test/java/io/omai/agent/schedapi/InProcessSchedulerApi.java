package io.omai.agent.schedapi;

import io.grpc.ManagedChannel;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.tenancy.MutableClock;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Instant;
import java.util.concurrent.TimeUnit;

/**
 * The scheduler API over grpc's in-process transport with direct executors (deterministic, no threads of its
 * own), on an eight-GPU {@link StaticNodeInventory} and a hand-moved clock. Close it after each test.
 */
final class InProcessSchedulerApi implements AutoCloseable {
    final MutableClock clock = new MutableClock(Instant.parse("2026-11-29T08:00:00Z"));
    final StaticNodeInventory inventory;
    final ReservationBook book;
    final SchedulerApiServer server;
    final ManagedChannel channel;
    final NodeAgentGrpc.NodeAgentBlockingStub blocking;
    final NodeAgentGrpc.NodeAgentStub async;

    InProcessSchedulerApi(AntiAffinityPolicy policy) {
        this(policy, NodeFixtures.eightGpus());
    }

    InProcessSchedulerApi(AntiAffinityPolicy policy, NodeSnapshot node) {
        this(policy, node, "");
    }

    InProcessSchedulerApi(AntiAffinityPolicy policy, NodeSnapshot node, String tenantLabel) {
        inventory = new StaticNodeInventory(node);
        book = new ReservationBook(inventory::snapshot, policy, clock);
        String name = InProcessServerBuilder.generateName();
        server = new SchedulerApiServer(
                        InProcessServerBuilder.forName(name).directExecutor(),
                        inventory,
                        book,
                        new ClientPolicy.AnyClient(),
                        tenantLabel)
                .start();
        channel = InProcessChannelBuilder.forName(name).directExecutor().build();
        blocking = NodeAgentGrpc.newBlockingStub(channel);
        async = NodeAgentGrpc.newStub(channel);
    }

    @Override
    public void close() {
        channel.shutdownNow();
        try {
            channel.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        server.close();
    }
}
