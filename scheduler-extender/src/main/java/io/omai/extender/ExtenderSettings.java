package io.omai.extender;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.omai.extender.config.AgentConnection;
import io.omai.extender.config.ScoringPolicy;
import java.util.Objects;

/**
 * Everything {@link SchedulerExtender#start} needs.
 *
 * @param httpPort where kube-scheduler calls; 0 for an ephemeral port (tests, {@code ./omai simulate})
 * @param client the Kubernetes API: EndpointSlices of the agents' Service, pods, pods/binding
 * @param agents the agents' Service (namespace, name, port), token file, TLS, deadlines
 * @param scoring how prioritize ranks nodes
 * @param tenantLabel the pod label naming a pod's tenant (the agents' {@code tenancy.tenantLabel}); pods without it
 *     belong to their namespace
 * @param parallelism threads that filter large node lists
 */
public record ExtenderSettings(
        int httpPort,
        KubernetesClient client,
        AgentConnection agents,
        ScoringPolicy scoring,
        String tenantLabel,
        int parallelism) {
    public ExtenderSettings {
        Objects.requireNonNull(client, "client");
        Objects.requireNonNull(agents, "agents");
        Objects.requireNonNull(scoring, "scoring");
        Objects.requireNonNull(tenantLabel, "tenantLabel");
        if (httpPort < 0 || httpPort > 65535) {
            throw new IllegalArgumentException("HTTP port " + httpPort + " is outside 0..65535");
        }
        if (parallelism < 1) {
            throw new IllegalArgumentException("parallelism " + parallelism + " is below 1");
        }
    }

    /** Defaults: bin-packing, the default tenant label, one thread per processor. */
    public static ExtenderSettings of(int httpPort, KubernetesClient client, AgentConnection agents) {
        return new ExtenderSettings(
                httpPort,
                client,
                agents,
                ScoringPolicy.DEFAULT,
                "omai.io/tenant",
                Runtime.getRuntime().availableProcessors());
    }

    public ExtenderSettings withScoring(ScoringPolicy policy) {
        return new ExtenderSettings(httpPort, client, agents, policy, tenantLabel, parallelism);
    }

    public ExtenderSettings withTenantLabel(String label) {
        return new ExtenderSettings(httpPort, client, agents, scoring, label, parallelism);
    }
}
