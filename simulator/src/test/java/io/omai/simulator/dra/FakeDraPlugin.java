package io.omai.simulator.dra;

import io.grpc.Server;
import io.grpc.stub.StreamObserver;
import io.omai.agent.deviceplugin.UnixSocketGrpc;
import io.omai.agent.dra.registration.v1.InfoRequest;
import io.omai.agent.dra.registration.v1.PluginInfo;
import io.omai.agent.dra.registration.v1.RegistrationGrpc;
import io.omai.agent.dra.registration.v1.RegistrationStatus;
import io.omai.agent.dra.registration.v1.RegistrationStatusResponse;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A DRA driver for the simulator's own tests, written from kubelet's published API: the Registration service on
 * a socket in the registry directory and the DRA service (v1 and v1beta1) on its endpoint. It prepares every
 * claim as one device {@code dev-<name>} with CDI ID {@code test.example/gpu=<uid>}, except claims named
 * {@code fail-*} (an error) and {@code skip-*} (left out), and records which service each call came through.
 */
final class FakeDraPlugin implements AutoCloseable {
    final List<RegistrationStatus> notifications = new CopyOnWriteArrayList<>();
    final List<String> calls = new CopyOnWriteArrayList<>();
    private final Server registration;
    private final Server service;

    FakeDraPlugin(Path registrySocket, Path endpoint, String type, List<String> versions, Duration getInfoDelay)
            throws IOException {
        this.service = UnixSocketGrpc.startServer(endpoint, List.of(new V1(), new V1beta1()));
        this.registration = UnixSocketGrpc.startServer(
                registrySocket, List.of(new Registration("test.example", endpoint, type, versions, getInfoDelay)));
    }

    @Override
    public void close() {
        UnixSocketGrpc.stop(registration, 100);
        UnixSocketGrpc.stop(service, 100);
    }

    private final class Registration extends RegistrationGrpc.RegistrationImplBase {
        private final PluginInfo info;
        private final Duration delay;

        Registration(String name, Path endpoint, String type, List<String> versions, Duration delay) {
            this.info = PluginInfo.newBuilder()
                    .setType(type)
                    .setName(name)
                    .setEndpoint(endpoint.toString())
                    .addAllSupportedVersions(versions)
                    .build();
            this.delay = delay;
        }

        @Override
        public void getInfo(InfoRequest request, StreamObserver<PluginInfo> response) {
            try {
                Thread.sleep(delay);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            response.onNext(info);
            response.onCompleted();
        }

        @Override
        public void notifyRegistrationStatus(
                RegistrationStatus request, StreamObserver<RegistrationStatusResponse> response) {
            notifications.add(request);
            response.onNext(RegistrationStatusResponse.getDefaultInstance());
            response.onCompleted();
        }
    }

    private final class V1 extends io.omai.agent.dra.v1.DRAPluginGrpc.DRAPluginImplBase {
        @Override
        public void nodePrepareResources(
                io.omai.agent.dra.v1.NodePrepareResourcesRequest request,
                StreamObserver<io.omai.agent.dra.v1.NodePrepareResourcesResponse> response) {
            calls.add("v1.prepare");
            var answer = io.omai.agent.dra.v1.NodePrepareResourcesResponse.newBuilder();
            for (var claim : request.getClaimsList()) {
                if (claim.getName().startsWith("skip-")) {
                    continue;
                }
                var result = io.omai.agent.dra.v1.NodePrepareResourceResponse.newBuilder();
                if (claim.getName().startsWith("fail-")) {
                    result.setError("cannot prepare " + claim.getName());
                } else {
                    result.addDevices(io.omai.agent.dra.v1.Device.newBuilder()
                            .setPoolName("node-1")
                            .setDeviceName("dev-" + claim.getName())
                            .addCdiDeviceIds("test.example/gpu=" + claim.getUid()));
                }
                answer.putClaims(claim.getUid(), result.build());
            }
            response.onNext(answer.build());
            response.onCompleted();
        }

        @Override
        public void nodeUnprepareResources(
                io.omai.agent.dra.v1.NodeUnprepareResourcesRequest request,
                StreamObserver<io.omai.agent.dra.v1.NodeUnprepareResourcesResponse> response) {
            calls.add("v1.unprepare");
            var answer = io.omai.agent.dra.v1.NodeUnprepareResourcesResponse.newBuilder();
            request.getClaimsList()
                    .forEach(claim -> answer.putClaims(
                            claim.getUid(), io.omai.agent.dra.v1.NodeUnprepareResourceResponse.getDefaultInstance()));
            response.onNext(answer.build());
            response.onCompleted();
        }
    }

    private final class V1beta1 extends io.omai.agent.dra.v1beta1.DRAPluginGrpc.DRAPluginImplBase {
        @Override
        public void nodePrepareResources(
                io.omai.agent.dra.v1beta1.NodePrepareResourcesRequest request,
                StreamObserver<io.omai.agent.dra.v1beta1.NodePrepareResourcesResponse> response) {
            calls.add("v1beta1.prepare");
            var answer = io.omai.agent.dra.v1beta1.NodePrepareResourcesResponse.newBuilder();
            for (var claim : request.getClaimsList()) {
                answer.putClaims(
                        claim.getUid(),
                        io.omai.agent.dra.v1beta1.NodePrepareResourceResponse.newBuilder()
                                .addDevices(io.omai.agent.dra.v1beta1.Device.newBuilder()
                                        .setPoolName("node-1")
                                        .setDeviceName("dev-" + claim.getName())
                                        .addCdiDeviceIds("test.example/gpu=" + claim.getUid()))
                                .build());
            }
            response.onNext(answer.build());
            response.onCompleted();
        }
    }
}
