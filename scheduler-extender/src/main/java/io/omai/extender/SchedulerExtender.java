package io.omai.extender;

import io.omai.agent.schedapi.expr.DeviceExpressions;
import io.omai.extender.bind.BearerToken;
import io.omai.extender.bind.Binder;
import io.omai.extender.cache.AgentDirectory;
import io.omai.extender.cache.NodeStateCache;
import io.omai.extender.decide.Decider;
import io.omai.extender.decide.PodDemand;
import io.omai.extender.http.ExtenderHttpServer;
import io.omai.extender.http.ExtenderRoutes;
import java.net.InetSocketAddress;

/**
 * The extender, wired: agent discovery (EndpointSlice informer), one watch stream per node, the decider, the
 * binder and the HTTP server kube-scheduler calls. The one composition root; {@link ExtenderMain} and tests
 * (and {@code ./omai simulate}) start it the same way.
 *
 * <pre>{@code
 * try (var extender = SchedulerExtender.start(ExtenderSettings.of(0, client,
 *         AgentConnection.of("omai-system", "omai-node-agent", 7443)))) {
 *     int port = extender.port(); // kube-scheduler's urlPrefix: http://host:port
 * }
 * }</pre>
 */
public final class SchedulerExtender implements AutoCloseable {
    /** Resource expressions kept compiled; schedulers send the same few for every pod. */
    static final int EXPRESSION_CACHE_SIZE = 256;

    private final NodeStateCache cache;
    private final AgentDirectory directory;
    private final Decider decider;
    private final ExtenderHttpServer http;

    private SchedulerExtender(
            NodeStateCache cache, AgentDirectory directory, Decider decider, ExtenderHttpServer http) {
        this.cache = cache;
        this.directory = directory;
        this.decider = decider;
        this.http = http;
    }

    public static SchedulerExtender start(ExtenderSettings settings) {
        var agents = settings.agents();
        var cache = NodeStateCache.overTcp(agents.tls(), agents.maxBackoff());
        var directory =
                new AgentDirectory(settings.client(), agents.namespace(), agents.service(), agents.port(), cache);
        var decider = new Decider(cache, settings.scoring(), agents.fitDeadline(), settings.parallelism());
        var expressions = new DeviceExpressions(EXPRESSION_CACHE_SIZE);
        Binder.PodReader reader = pod -> PodDemand.of(pod, settings.tenantLabel(), expressions);
        var binder = new Binder(settings.client(), cache, decider, reader, new BearerToken(agents.tokenFile()), agents);
        var routes = new ExtenderRoutes(decider, binder, reader);
        ExtenderHttpServer http = null;
        try {
            directory.start();
            http = new ExtenderHttpServer(new InetSocketAddress(settings.httpPort()), routes, directory::synced)
                    .start();
            return new SchedulerExtender(cache, directory, decider, http);
        } catch (RuntimeException e) {
            if (http != null) {
                http.close();
            }
            directory.close();
            decider.close();
            cache.close();
            throw e;
        }
    }

    /** The HTTP port kube-scheduler calls (the bound one when settings asked for 0). */
    public int port() {
        return http.port();
    }

    /** The watched node states, for tests and benchmarks that wait for a node to be known. */
    public NodeStateCache cache() {
        return cache;
    }

    /** Whether agent discovery has listed the EndpointSlices once. */
    public boolean ready() {
        return directory.synced();
    }

    @Override
    public void close() {
        http.close();
        directory.close();
        decider.close();
        cache.close();
    }
}
