package io.omai.agent.schedapi;

import io.omai.agent.tenancy.Subscription;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.UnaryOperator;

/**
 * An in-memory inventory that changes only when told to: for tests, benchmarks and the {@code simulate}
 * command. Thread-safe; every update bumps the generation and notifies listeners after it is visible.
 */
public final class StaticNodeInventory implements NodeInventory {
    private final Object lock = new Object();
    private final List<Runnable> listeners = new CopyOnWriteArrayList<>();
    private volatile NodeSnapshot current;

    public StaticNodeInventory(NodeSnapshot initial) {
        this.current = Objects.requireNonNull(initial, "initial");
    }

    @Override
    public NodeSnapshot snapshot() {
        return current;
    }

    @Override
    public Subscription onChange(Runnable listener) {
        listeners.add(Objects.requireNonNull(listener, "listener"));
        return () -> listeners.remove(listener);
    }

    /** Replaces the snapshot with {@code change} applied to it; the generation is bumped here. */
    public NodeSnapshot update(UnaryOperator<NodeSnapshot> change) {
        NodeSnapshot next;
        synchronized (lock) {
            NodeSnapshot before = current;
            next = change.apply(before).withGeneration(before.generation() + 1);
            current = next;
        }
        listeners.forEach(Runnable::run);
        return next;
    }

    /** Records an allocation by a running container, as the ledger would after kubelet's Allocate. */
    public NodeSnapshot allocate(String gpuUuid, String tenant, int milli, long memoryBytes) {
        return updateGpu(gpuUuid, gpu -> {
            var tenants = new TreeSet<>(gpu.tenants());
            tenants.add(tenant);
            return gpu.withAllocation(gpu.milliAllocated() + milli, gpu.memoryAllocatedBytes() + memoryBytes, tenants);
        });
    }

    /** Frees everything on a GPU, as when its pods leave. */
    public NodeSnapshot freeAll(String gpuUuid) {
        return updateGpu(gpuUuid, gpu -> gpu.withAllocation(0, 0, Set.of()));
    }

    public NodeSnapshot setHealth(String gpuUuid, DeviceHealth health) {
        return updateGpu(gpuUuid, gpu -> gpu.withHealth(health));
    }

    private NodeSnapshot updateGpu(String gpuUuid, UnaryOperator<GpuSnapshot> change) {
        return update(snapshot -> {
            if (snapshot.gpus().stream().noneMatch(gpu -> gpu.uuid().equals(gpuUuid))) {
                throw new IllegalArgumentException("no GPU " + gpuUuid + " on node " + snapshot.nodeName());
            }
            return snapshot.withGpus(snapshot.gpus().stream()
                    .map(gpu -> gpu.uuid().equals(gpuUuid) ? change.apply(gpu) : gpu)
                    .toList());
        });
    }
}
