package io.omai.simulator.kubelet;

import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.omai.agent.deviceplugin.UnixSocketGrpc;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.ContainerPreferredAllocationRequest;
import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginOptions;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.deviceplugin.v1beta1.PreferredAllocationRequest;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * kubelet's side of one registered plugin: a channel to its socket, its options, and the ListAndWatch stream
 * whose latest full list replaces the previous one. Calls are made as kubelet makes them (one container per call).
 */
public final class PluginEndpoint implements AutoCloseable {
    private final String resourceName;
    private final int generation;
    private final ManagedChannel channel;
    private final DevicePluginGrpc.DevicePluginBlockingStub stub;
    private final AtomicReference<DevicePluginOptions> options =
            new AtomicReference<>(DevicePluginOptions.getDefaultInstance());
    private final AtomicReference<List<Device>> devices = new AtomicReference<>(List.of());
    private final AtomicBoolean streaming = new AtomicBoolean();
    private final AtomicInteger messages = new AtomicInteger();

    private PluginEndpoint(Path socket, String resourceName, int generation) {
        this.resourceName = resourceName;
        this.generation = generation;
        this.channel = UnixSocketGrpc.channel(socket);
        this.stub = DevicePluginGrpc.newBlockingStub(channel);
    }

    /** Dials the plugin (as kubelet, up to 10 s), reads its options and opens ListAndWatch. */
    static PluginEndpoint connect(Path socket, String resourceName, int generation) {
        PluginEndpoint endpoint = new PluginEndpoint(socket, resourceName, generation);
        try {
            endpoint.options.set(endpoint.stub
                    .withWaitForReady()
                    .withDeadlineAfter(10, TimeUnit.SECONDS)
                    .getDevicePluginOptions(Empty.getDefaultInstance()));
            DevicePluginGrpc.newStub(endpoint.channel).listAndWatch(Empty.getDefaultInstance(), new StreamObserver<>() {
                @Override
                public void onNext(ListAndWatchResponse value) {
                    endpoint.devices.set(List.copyOf(value.getDevicesList()));
                    endpoint.messages.incrementAndGet();
                    endpoint.streaming.set(true);
                }

                @Override
                public void onError(Throwable t) {
                    endpoint.streaming.set(false);
                }

                @Override
                public void onCompleted() {
                    endpoint.streaming.set(false);
                }
            });
        } catch (RuntimeException e) {
            endpoint.streaming.set(false);
        }
        return endpoint;
    }

    public String resourceName() {
        return resourceName;
    }

    int generation() {
        return generation;
    }

    /** True once the stream delivered its first list and while it stays open. */
    public boolean streaming() {
        return streaming.get();
    }

    public int listMessages() {
        return messages.get();
    }

    public DevicePluginOptions options() {
        return options.get();
    }

    public List<Device> devices() {
        return devices.get();
    }

    /** Asks the plugin for its options again (a round trip with no work behind it). */
    public DevicePluginOptions fetchOptions() {
        return stub.withDeadlineAfter(10, TimeUnit.SECONDS).getDevicePluginOptions(Empty.getDefaultInstance());
    }

    /** GetPreferredAllocation for one container. */
    public List<String> preferredAllocation(Collection<String> available, Collection<String> mustInclude, int size) {
        return stub.withDeadlineAfter(10, TimeUnit.SECONDS)
                .getPreferredAllocation(PreferredAllocationRequest.newBuilder()
                        .addContainerRequests(ContainerPreferredAllocationRequest.newBuilder()
                                .addAllAvailableDeviceIDs(available)
                                .addAllMustIncludeDeviceIDs(mustInclude)
                                .setAllocationSize(size))
                        .build())
                .getContainerResponses(0)
                .getDeviceIDsList();
    }

    /** Allocate for one container; kubelet uses {@code container_responses[0]}. */
    public ContainerAllocateResponse allocate(Collection<String> deviceIds) {
        return allocate(AllocateRequest.newBuilder()
                        .addContainerRequests(
                                ContainerAllocateRequest.newBuilder().addAllDevicesIds(deviceIds))
                        .build())
                .getContainerResponses(0);
    }

    /** Allocate with an arbitrary request (tests of bad requests). */
    public io.omai.agent.deviceplugin.v1beta1.AllocateResponse allocate(AllocateRequest request) {
        return stub.withDeadlineAfter(10, TimeUnit.SECONDS).allocate(request);
    }

    @Override
    public void close() {
        streaming.set(false);
        channel.shutdownNow(); // cancels the ListAndWatch stream at once, as a dying kubelet does
    }
}
