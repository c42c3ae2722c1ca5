package io.omai.extender.cache;

import io.fabric8.kubernetes.api.model.discovery.v1.Endpoint;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointPort;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSlice;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.informers.ResourceEventHandler;
import io.fabric8.kubernetes.client.informers.SharedIndexInformer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds every node's agent from the EndpointSlices of the agents' headless Service (one endpoint per agent pod,
 * with its node name) through a fabric8 informer, and keeps the {@link NodeStateCache}'s links equal to them.
 */
public final class AgentDirectory implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(AgentDirectory.class);
    static final String SERVICE_NAME_LABEL = "kubernetes.io/service-name";

    private final NodeStateCache cache;
    private final int port;
    private final SharedIndexInformer<EndpointSlice> informer;

    public AgentDirectory(KubernetesClient client, String namespace, String service, int port, NodeStateCache cache) {
        this.cache = cache;
        this.port = port;
        this.informer = client.discovery()
                .v1()
                .endpointSlices()
                .inNamespace(namespace)
                .withLabel(SERVICE_NAME_LABEL, service)
                .runnableInformer(0);
        informer.addEventHandler(new ResourceEventHandler<>() {
            @Override
            public void onAdd(EndpointSlice slice) {
                refresh();
            }

            @Override
            public void onUpdate(EndpointSlice before, EndpointSlice after) {
                refresh();
            }

            @Override
            public void onDelete(EndpointSlice slice, boolean finalStateUnknown) {
                refresh();
            }
        });
    }

    public AgentDirectory start() {
        informer.start();
        return this;
    }

    /** Whether the informer has listed the slices once: until then the cache does not know every node. */
    public boolean synced() {
        return informer.hasSynced();
    }

    private synchronized void refresh() {
        cache.reconcile(endpoints(informer.getStore().list(), port));
    }

    /**
     * Node name to agent endpoint across {@code slices}: endpoints with a node name and an address that are not
     * marked unready; the port of number {@code port}, else the slice's only port, else {@code port}.
     */
    static Map<String, AgentEndpoint> endpoints(List<EndpointSlice> slices, int port) {
        Map<String, AgentEndpoint> byNode = new TreeMap<>();
        for (EndpointSlice slice : slices) {
            int slicePort = portOf(slice, port);
            if (slice.getEndpoints() == null) {
                continue;
            }
            for (Endpoint endpoint : slice.getEndpoints()) {
                boolean unready = endpoint.getConditions() != null
                        && Boolean.FALSE.equals(endpoint.getConditions().getReady());
                if (endpoint.getNodeName() == null
                        || endpoint.getAddresses() == null
                        || endpoint.getAddresses().isEmpty()
                        || unready) {
                    continue;
                }
                var found = new AgentEndpoint(
                        endpoint.getNodeName(), endpoint.getAddresses().getFirst(), slicePort);
                AgentEndpoint earlier = byNode.putIfAbsent(endpoint.getNodeName(), found);
                if (earlier != null && !earlier.equals(found)) {
                    log.warn(
                            "event=two_agents_on_node node={} kept={} ignored={}",
                            endpoint.getNodeName(),
                            earlier.target(),
                            found.target());
                }
            }
        }
        return new HashMap<>(byNode);
    }

    private static int portOf(EndpointSlice slice, int port) {
        List<EndpointPort> ports = slice.getPorts() == null ? List.of() : slice.getPorts();
        if (ports.stream().anyMatch(p -> p.getPort() != null && p.getPort() == port)) {
            return port;
        }
        return ports.size() == 1 && ports.getFirst().getPort() != null
                ? ports.getFirst().getPort()
                : port;
    }

    @Override
    public void close() {
        informer.close();
    }
}
