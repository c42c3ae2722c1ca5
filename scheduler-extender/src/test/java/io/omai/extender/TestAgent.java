package io.omai.extender;

import io.grpc.ServerInterceptor;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.omai.agent.schedapi.ClientPolicy;
import io.omai.agent.schedapi.DeviceHealth;
import io.omai.agent.schedapi.GpuSnapshot;
import io.omai.agent.schedapi.HcaSnapshot;
import io.omai.agent.schedapi.NodeSnapshot;
import io.omai.agent.schedapi.SchedulerApiServer;
import io.omai.agent.schedapi.StaticNodeInventory;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.placement.AntiAffinityPolicy;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A real node agent's scheduler API (the agent's own {@link SchedulerApiServer}, reservation book and an in-memory
 * inventory) on a loopback TCP port, as the extender meets it in a cluster.
 */
public final class TestAgent implements AutoCloseable {
    public static final long GIB = 1L << 30;

    private final String nodeName;
    private final StaticNodeInventory inventory;
    private final ReservationBook book;
    private final List<ServerInterceptor> interceptors;
    private SchedulerApiServer server;
    private int port;

    private TestAgent(
            String nodeName, NodeSnapshot snapshot, AntiAffinityPolicy policy, List<ServerInterceptor> interceptors) {
        this.nodeName = nodeName;
        this.inventory = new StaticNodeInventory(snapshot);
        this.book = new ReservationBook(inventory::snapshot, policy, Clock.systemUTC());
        this.interceptors = List.copyOf(interceptors);
    }

    /** {@code gpus} idle 80 GiB GPUs (the first half on NUMA 0, the rest on NUMA 1) and one HCA with 4 VFs per NUMA node. */
    public static TestAgent start(
            String nodeName, int gpus, AntiAffinityPolicy policy, ServerInterceptor... interceptors) {
        var agent = new TestAgent(nodeName, snapshot(nodeName, gpus), policy, List.of(interceptors));
        agent.listen(0);
        return agent;
    }

    public static NodeSnapshot snapshot(String nodeName, int count) {
        var gpus = new ArrayList<GpuSnapshot>();
        for (int i = 0; i < count; i++) {
            boolean first = i < (count + 1) / 2;
            gpus.add(new GpuSnapshot(
                    uuid(nodeName, i),
                    i,
                    "NVIDIA H100 80GB HBM3",
                    80 * GIB,
                    1000,
                    0,
                    0,
                    DeviceHealth.HEALTHY,
                    first ? 0 : 1,
                    Map.of("class", first ? "train" : "infer"),
                    first ? Set.of("nvlink") : Set.of(),
                    Set.of()));
        }
        return new NodeSnapshot(nodeName, 1, gpus, List.of(hca(0), hca(1)));
    }

    private static HcaSnapshot hca(int number) {
        String bus = number == 0 ? "3b" : "d8";
        List<String> vfs = List.of(
                "0000:" + bus + ":00.2", "0000:" + bus + ":00.3", "0000:" + bus + ":00.4", "0000:" + bus + ":00.5");
        return new HcaSnapshot(
                "mlx5_" + number, "0000:" + bus + ":00.0", number, "InfiniBand", vfs, Set.copyOf(vfs), List.of());
    }

    public static String uuid(String nodeName, int index) {
        return "GPU-" + nodeName + "-" + index;
    }

    private void listen(int wanted) {
        var builder = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), wanted));
        interceptors.forEach(builder::intercept);
        server = new SchedulerApiServer(builder, inventory, book, new ClientPolicy.AnyClient()).start();
        port = server.port();
    }

    /** Stops serving (every stream drops), as when the agent pod dies. */
    public void stop() {
        server.close();
    }

    /** Serves again on the same port, as the restarted agent pod. */
    public void restart() {
        listen(port);
    }

    public String nodeName() {
        return nodeName;
    }

    public int port() {
        return port;
    }

    public StaticNodeInventory inventory() {
        return inventory;
    }

    public ReservationBook book() {
        return book;
    }

    @Override
    public void close() {
        server.close();
    }
}
