package io.omai.agent.dra;

import io.grpc.stub.StreamObserver;
import io.omai.agent.dra.registration.v1.InfoRequest;
import io.omai.agent.dra.registration.v1.PluginInfo;
import io.omai.agent.dra.registration.v1.RegistrationGrpc;
import io.omai.agent.dra.registration.v1.RegistrationStatus;
import io.omai.agent.dra.registration.v1.RegistrationStatusResponse;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What kubelet's plugin watcher asks on the registration socket: who we are ({@code DRAPlugin}, the driver name,
 * the DRA service socket, the service versions in our order of preference; kubelet takes the first it supports)
 * and whether registration worked. A refusal is logged and makes the driver re-create the registration socket,
 * which the watcher sees as a new plugin and tries again.
 */
final class RegistrationService extends RegistrationGrpc.RegistrationImplBase {
    private static final Logger log = LoggerFactory.getLogger(RegistrationService.class);

    /** kubelet's plugin type for DRA drivers. */
    static final String PLUGIN_TYPE = "DRAPlugin";
    /** The service names kubelet's DRA manager accepts, v1 first. */
    static final List<String> SUPPORTED_VERSIONS = List.of("v1.DRAPlugin", "v1beta1.DRAPlugin");

    private final String driver;
    private final Path endpoint;
    private final AtomicBoolean registered = new AtomicBoolean();
    private final AtomicBoolean refused = new AtomicBoolean();

    RegistrationService(String driver, Path endpoint) {
        this.driver = driver;
        this.endpoint = endpoint;
    }

    @Override
    public void getInfo(InfoRequest request, StreamObserver<PluginInfo> response) {
        response.onNext(PluginInfo.newBuilder()
                .setType(PLUGIN_TYPE)
                .setName(driver)
                .setEndpoint(endpoint.toString())
                .addAllSupportedVersions(SUPPORTED_VERSIONS)
                .build());
        response.onCompleted();
    }

    @Override
    public void notifyRegistrationStatus(
            RegistrationStatus request, StreamObserver<RegistrationStatusResponse> response) {
        if (request.getPluginRegistered()) {
            registered.set(true);
            log.info("event=dra_registered driver={} endpoint={}", driver, endpoint);
        } else {
            registered.set(false);
            refused.set(true);
            log.error(
                    "event=dra_registration_refused driver={} endpoint={} error=\"{}\" detail=\"re-creating the "
                            + "registration socket so kubelet tries again\"",
                    driver,
                    endpoint,
                    request.getError());
        }
        response.onNext(RegistrationStatusResponse.getDefaultInstance());
        response.onCompleted();
    }

    boolean registered() {
        return registered.get();
    }

    /** Whether kubelet refused since the last call (cleared by it). */
    boolean takeRefusal() {
        return refused.getAndSet(false);
    }
}
