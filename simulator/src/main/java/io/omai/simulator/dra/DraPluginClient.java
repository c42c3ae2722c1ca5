package io.omai.simulator.dra;

import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.omai.agent.deviceplugin.UnixSocketGrpc;
import io.omai.agent.dra.v1.DRAPluginGrpc;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * kubelet's client of one registered DRA driver: a channel to the endpoint the driver named in GetInfo, and the
 * gRPC service negotiated at registration ({@code v1.DRAPlugin} or {@code v1beta1.DRAPlugin}); every call goes to
 * that service, as kubelet's DRA manager makes it. Answers are kept as the plain records below whichever version
 * carried them.
 */
public final class DraPluginClient implements AutoCloseable {
    /** The service names kubelet knows, newest first (its default supported set). */
    public static final String V1 = "v1.DRAPlugin";

    public static final String V1BETA1 = "v1beta1.DRAPlugin";

    /** A claim as kubelet names it to the driver. */
    public record ClaimRef(String namespace, String uid, String name) {}

    /** One prepared device of a claim, as the driver answered it. */
    public record PreparedDevice(List<String> requestNames, String pool, String device, List<String> cdiDeviceIds) {}

    /**
     * The driver's answer for one claim: its devices, or the error it reported ({@code error} non-empty), or
     * {@code leftOut} when the response had no entry for the claim (kubelet fails the pod: "skipped claims").
     */
    public record ClaimResult(List<PreparedDevice> devices, String error, boolean leftOut) {
        public boolean ok() {
            return error.isEmpty() && !leftOut;
        }

        /** The CDI IDs for a container that uses {@code request} of this claim (devices serving all requests too). */
        public List<String> cdiDeviceIdsFor(String request) {
            List<String> ids = new ArrayList<>();
            for (PreparedDevice device : devices) {
                if (device.requestNames().isEmpty() || device.requestNames().contains(request)) {
                    ids.addAll(device.cdiDeviceIds());
                }
            }
            return ids;
        }

        /** Every CDI ID of the claim (a container that uses the whole claim). */
        public List<String> cdiDeviceIds() {
            List<String> ids = new ArrayList<>();
            devices.forEach(device -> ids.addAll(device.cdiDeviceIds()));
            return ids;
        }
    }

    private final String driver;
    private final Path endpoint;
    private final String service;
    private final long registeredNanos;
    private final ManagedChannel channel;
    private final Duration callTimeout;

    DraPluginClient(String driver, Path endpoint, String service, Duration callTimeout) {
        this.driver = driver;
        this.endpoint = endpoint;
        this.service = service;
        this.callTimeout = callTimeout;
        this.registeredNanos = System.nanoTime();
        this.channel = UnixSocketGrpc.channel(endpoint);
    }

    /** Connects the channel; false if the endpoint does not answer within {@code timeout}. */
    boolean connect(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        ConnectivityState state = channel.getState(true);
        while (state != ConnectivityState.READY && System.nanoTime() < deadline) {
            if (state == ConnectivityState.SHUTDOWN) {
                return false;
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
            state = channel.getState(true);
        }
        return state == ConnectivityState.READY;
    }

    public String driver() {
        return driver;
    }

    public Path endpoint() {
        return endpoint;
    }

    /** The negotiated service: {@link #V1} or {@link #V1BETA1}. */
    public String service() {
        return service;
    }

    long registeredNanos() {
        return registeredNanos;
    }

    /** NodePrepareResources for {@code claims}; a result for every claim asked, keyed by uid. */
    public Map<String, ClaimResult> prepare(List<ClaimRef> claims) {
        Map<String, ClaimResult> answered = new LinkedHashMap<>();
        if (service.equals(V1)) {
            var request = io.omai.agent.dra.v1.NodePrepareResourcesRequest.newBuilder();
            claims.forEach(claim -> request.addClaims(io.omai.agent.dra.v1.Claim.newBuilder()
                    .setNamespace(claim.namespace())
                    .setUid(claim.uid())
                    .setName(claim.name())));
            var response = DRAPluginGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(callTimeout.toMillis(), TimeUnit.MILLISECONDS)
                    .nodePrepareResources(request.build());
            response.getClaimsMap().forEach((uid, result) -> {
                List<PreparedDevice> devices = new ArrayList<>();
                result.getDevicesList()
                        .forEach(device -> devices.add(new PreparedDevice(
                                List.copyOf(device.getRequestNamesList()),
                                device.getPoolName(),
                                device.getDeviceName(),
                                List.copyOf(device.getCdiDeviceIdsList()))));
                answered.put(uid, new ClaimResult(List.copyOf(devices), result.getError(), false));
            });
        } else {
            var request = io.omai.agent.dra.v1beta1.NodePrepareResourcesRequest.newBuilder();
            claims.forEach(claim -> request.addClaims(io.omai.agent.dra.v1beta1.Claim.newBuilder()
                    .setNamespace(claim.namespace())
                    .setUid(claim.uid())
                    .setName(claim.name())));
            var response = io.omai.agent.dra.v1beta1.DRAPluginGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(callTimeout.toMillis(), TimeUnit.MILLISECONDS)
                    .nodePrepareResources(request.build());
            response.getClaimsMap().forEach((uid, result) -> {
                List<PreparedDevice> devices = new ArrayList<>();
                result.getDevicesList()
                        .forEach(device -> devices.add(new PreparedDevice(
                                List.copyOf(device.getRequestNamesList()),
                                device.getPoolName(),
                                device.getDeviceName(),
                                List.copyOf(device.getCdiDeviceIdsList()))));
                answered.put(uid, new ClaimResult(List.copyOf(devices), result.getError(), false));
            });
        }
        return inRequestOrder(claims, answered);
    }

    /** NodeUnprepareResources for {@code claims}; the error per claim uid (empty: unprepared). */
    public Map<String, ClaimResult> unprepare(List<ClaimRef> claims) {
        Map<String, ClaimResult> answered = new LinkedHashMap<>();
        if (service.equals(V1)) {
            var request = io.omai.agent.dra.v1.NodeUnprepareResourcesRequest.newBuilder();
            claims.forEach(claim -> request.addClaims(io.omai.agent.dra.v1.Claim.newBuilder()
                    .setNamespace(claim.namespace())
                    .setUid(claim.uid())
                    .setName(claim.name())));
            DRAPluginGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(callTimeout.toMillis(), TimeUnit.MILLISECONDS)
                    .nodeUnprepareResources(request.build())
                    .getClaimsMap()
                    .forEach((uid, result) -> answered.put(uid, new ClaimResult(List.of(), result.getError(), false)));
        } else {
            var request = io.omai.agent.dra.v1beta1.NodeUnprepareResourcesRequest.newBuilder();
            claims.forEach(claim -> request.addClaims(io.omai.agent.dra.v1beta1.Claim.newBuilder()
                    .setNamespace(claim.namespace())
                    .setUid(claim.uid())
                    .setName(claim.name())));
            io.omai.agent.dra.v1beta1.DRAPluginGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(callTimeout.toMillis(), TimeUnit.MILLISECONDS)
                    .nodeUnprepareResources(request.build())
                    .getClaimsMap()
                    .forEach((uid, result) -> answered.put(uid, new ClaimResult(List.of(), result.getError(), false)));
        }
        return inRequestOrder(claims, answered);
    }

    /** Results in the order asked; a claim the driver left out is marked so (kubelet fails it). */
    private static Map<String, ClaimResult> inRequestOrder(List<ClaimRef> claims, Map<String, ClaimResult> answered) {
        Map<String, ClaimResult> results = new LinkedHashMap<>();
        for (ClaimRef claim : claims) {
            ClaimResult result = answered.get(claim.uid());
            results.put(
                    claim.uid(),
                    result != null
                            ? result
                            : new ClaimResult(
                                    List.of(), "the driver's response has no entry for claim " + claim.uid(), true));
        }
        return results;
    }

    @Override
    public void close() {
        UnixSocketGrpc.close(channel);
    }

    @Override
    public String toString() {
        return driver + " at " + endpoint + " (" + service + ")";
    }
}
