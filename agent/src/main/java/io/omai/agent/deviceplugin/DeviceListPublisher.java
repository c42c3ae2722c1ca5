package io.omai.agent.deviceplugin;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.grpc.Context;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.deviceplugin.v1beta1.NUMANode;
import io.omai.agent.deviceplugin.v1beta1.TopologyInfo;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuHealth;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.placement.MilliGpu;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ListAndWatch side of the plugin, modelled on grpc's HealthServiceImpl.watch: a new stream gets the current
 * full list first, then every change; streams live in an identity set under one lock and leave it when cancelled
 * (cancel handler and Context listener both). Every message is the complete list: kubelet replaces its view with
 * each one. A GPU that recovers is advertised Healthy again. The milli-GPU plugin builds its lists from GPU health
 * here; another plugin (the VF plugin) builds its own and hands each to {@link #publish}.
 */
public final class DeviceListPublisher {
    static final String HEALTHY = "Healthy";
    static final String UNHEALTHY = "Unhealthy";
    private static final Logger log = LoggerFactory.getLogger(DeviceListPublisher.class);

    private final List<GpuDevice> gpus;
    /**
     * Each GPU's 1 000 IDs as Healthy devices, built once: the only copy kept (8 000 IDs on an 8-GPU node). The
     * Unhealthy variant of a GPU is built when it is published (a health change is rare) and shares these ID
     * strings; keeping both prebuilt doubled the agent's largest heap item.
     */
    private final Map<String, List<Device>> healthyDevices = new LinkedHashMap<>();

    private volatile Runnable onStreamEnded = () -> {};

    private final Object watchLock = new Object();

    @GuardedBy("watchLock")
    private final Set<StreamObserver<ListAndWatchResponse>> watchers =
            Collections.newSetFromMap(new IdentityHashMap<>());

    @GuardedBy("watchLock")
    private ListAndWatchResponse current;

    @GuardedBy("watchLock")
    private boolean terminated;

    public DeviceListPublisher(List<GpuDevice> gpus, Map<String, GpuHealth> initialHealth) {
        this.gpus = List.copyOf(gpus);
        for (GpuDevice gpu : gpus) {
            healthyDevices.put(gpu.uuid(), devices(gpu));
        }
        this.current = build(initialHealth);
    }

    /** A publisher whose lists are built by its owner: {@code initial} first, then each {@link #publish}. */
    DeviceListPublisher(ListAndWatchResponse initial) {
        this.gpus = List.of();
        this.current = initial;
    }

    private static List<Device> devices(GpuDevice gpu) {
        List<Device> devices = new ArrayList<>(MilliGpu.PER_GPU);
        Device.Builder template = Device.newBuilder().setHealth(HEALTHY);
        if (gpu.hasNumaNode()) {
            template.setTopology(
                    TopologyInfo.newBuilder().addNodes(NUMANode.newBuilder().setID(gpu.numaNode())));
        }
        for (int slot = 0; slot < MilliGpu.PER_GPU; slot++) {
            devices.add(template.setID(new MilliGpuId(gpu.uuid(), slot).id()).build());
        }
        return List.copyOf(devices);
    }

    private ListAndWatchResponse build(Map<String, GpuHealth> health) {
        ListAndWatchResponse.Builder response = ListAndWatchResponse.newBuilder();
        for (GpuDevice gpu : gpus) {
            GpuHealth h = health.get(gpu.uuid());
            boolean healthy = h == null || h.healthy();
            List<Device> devices = healthyDevices.get(gpu.uuid());
            if (healthy) {
                response.addAllDevices(devices);
            } else {
                for (Device device : devices) {
                    response.addDevices(device.toBuilder().setHealth(UNHEALTHY)); // same ID string, topology
                }
            }
        }
        return response.build();
    }

    /** {@code listener} is told whenever kubelet's stream ends (cancelled or failed): kubelet may have restarted. */
    public void onStreamEnded(Runnable listener) {
        this.onStreamEnded = listener;
    }

    /** The list every new stream starts with. */
    ListAndWatchResponse current() {
        synchronized (watchLock) {
            return current;
        }
    }

    /** Pushes the list for a new health state to every stream. */
    public void healthChanged(Map<String, GpuHealth> health) {
        publish(build(health));
    }

    /** Pushes {@code next} to every stream, unless it equals the list they have. */
    void publish(ListAndWatchResponse next) {
        synchronized (watchLock) {
            if (next.equals(current)) {
                return;
            }
            current = next;
            for (StreamObserver<ListAndWatchResponse> watcher : List.copyOf(watchers)) {
                try {
                    watcher.onNext(next);
                } catch (RuntimeException e) {
                    watchers.remove(watcher); // the stream is gone; its cancel handler reports it
                }
            }
        }
    }

    /** Serves one ListAndWatch stream: the current list now, then every change until kubelet cancels. */
    void watch(StreamObserver<ListAndWatchResponse> observer) {
        synchronized (watchLock) {
            if (terminated) {
                observer.onCompleted();
                return;
            }
            observer.onNext(current);
            watchers.add(observer);
        }
        Runnable remove = () -> {
            boolean removed;
            synchronized (watchLock) {
                removed = watchers.remove(observer);
            }
            if (removed) {
                log.info("event=list_and_watch_ended detail=\"kubelet closed the stream; checking registration\"");
                onStreamEnded.run();
            }
        };
        if (observer instanceof ServerCallStreamObserver<ListAndWatchResponse> serverObserver) {
            serverObserver.setOnCancelHandler(remove);
        }
        Context.current().addListener(context -> remove.run(), Runnable::run);
    }

    /** Number of open streams (kubelet keeps exactly one per registration). */
    public int watchers() {
        synchronized (watchLock) {
            return watchers.size();
        }
    }

    /** Ends every stream (shutdown); later streams end at once. */
    public void terminate() {
        synchronized (watchLock) {
            terminated = true;
            for (StreamObserver<ListAndWatchResponse> watcher : watchers) {
                try {
                    watcher.onCompleted();
                } catch (RuntimeException e) {
                    // already cancelled
                }
            }
            watchers.clear();
        }
    }
}
