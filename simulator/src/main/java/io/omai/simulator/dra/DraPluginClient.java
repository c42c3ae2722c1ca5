package io.omai.simulator.dra;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
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
        var request = io.omai.agent.dra.v1.NodePrepareResourcesRequest.newBuilder();
        claims.forEach(claim -> request.addClaims(v1Claim(claim)));
        io.omai.agent.dra.v1.NodePrepareResourcesResponse response = service.equals(V1)
                ? v1Stub().nodePrepareResources(request.build())
                : reread(
                        v1beta1Stub()
                                .nodePrepareResources(reread(
                                        request.build(),
                                        io.omai.agent.dra.v1beta1.NodePrepareResourcesRequest.parser())),
                        io.omai.agent.dra.v1.NodePrepareResourcesResponse.parser());
        Map<String, ClaimResult> answered = new LinkedHashMap<>();
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
        return inRequestOrder(claims, answered);
    }

    /** NodeUnprepareResources for {@code claims}; the error per claim uid (empty: unprepared). */
    public Map<String, ClaimResult> unprepare(List<ClaimRef> claims) {
        var request = io.omai.agent.dra.v1.NodeUnprepareResourcesRequest.newBuilder();
        claims.forEach(claim -> request.addClaims(v1Claim(claim)));
        io.omai.agent.dra.v1.NodeUnprepareResourcesResponse response = service.equals(V1)
                ? v1Stub().nodeUnprepareResources(request.build())
                : reread(
                        v1beta1Stub()
                                .nodeUnprepareResources(reread(
                                        request.build(),
                                        io.omai.agent.dra.v1beta1.NodeUnprepareResourcesRequest.parser())),
                        io.omai.agent.dra.v1.NodeUnprepareResourcesResponse.parser());
        Map<String, ClaimResult> answered = new LinkedHashMap<>();
        response.getClaimsMap()
                .forEach((uid, result) -> answered.put(uid, new ClaimResult(List.of(), result.getError(), false)));
        return inRequestOrder(claims, answered);
    }

    private static io.omai.agent.dra.v1.Claim v1Claim(ClaimRef claim) {
        return io.omai.agent.dra.v1.Claim.newBuilder()
                .setNamespace(claim.namespace())
                .setUid(claim.uid())
                .setName(claim.name())
                .build();
    }

    private DRAPluginGrpc.DRAPluginBlockingStub v1Stub() {
        return DRAPluginGrpc.newBlockingStub(channel).withDeadlineAfter(callTimeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    private io.omai.agent.dra.v1beta1.DRAPluginGrpc.DRAPluginBlockingStub v1beta1Stub() {
        return io.omai.agent.dra.v1beta1.DRAPluginGrpc.newBlockingStub(channel)
                .withDeadlineAfter(callTimeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * The v1beta1 messages are v1's field for field (the published protos differ only in their package): requests
     * are built once, as v1, and sent in whichever service was negotiated, so the wire carries that service's
     * method names exactly as kubelet's would.
     */
    private static <T> T reread(MessageLite message, Parser<T> as) {
        try {
            return as.parseFrom(message.toByteString());
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException("DRA v1 and v1beta1 messages no longer match: " + e.getMessage(), e);
        }
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
