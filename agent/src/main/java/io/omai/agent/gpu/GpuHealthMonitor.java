package io.omai.agent.gpu;

import static java.lang.foreign.ValueLayout.ADDRESS;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.gpu.nvml.NvmlLayouts;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import io.omai.agent.lifecycle.LoopThread;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Watches the GPUs through NVML: XID critical errors and double-bit ECC events (nvmlEventSetWait_v2) and failing
 * NVML queries make a GPU Unhealthy with a reason; a GPU comes back once it has been clean for the recovery
 * debounce (NVIDIA's plugin never recovers). If health checking cannot start, every GPU is Unhealthy, never
 * served blind; setup is retried.
 *
 * <p>One platform thread runs the loop (the wait blocks inside NVML, which would pin a virtual thread).
 */
public final class GpuHealthMonitor implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(GpuHealthMonitor.class);
    private static final int WAIT_TIMEOUT_MS = 500;

    private final NvmlLibrary nvml;
    private final List<GpuDevice> gpus;
    private final long debounceNanos;
    private final Set<Long> ignoredXids;
    private final LongSupplier nanoClock;
    private final List<Consumer<Map<String, GpuHealth>>> listeners = new CopyOnWriteArrayList<>();

    private final Object stateLock = new Object();

    @GuardedBy("stateLock")
    private final Map<String, GpuHealth> health = new LinkedHashMap<>();
    // System.nanoTime() of each GPU's latest problem
    @GuardedBy("stateLock")
    private final Map<String, Long> lastProblemNanos = new HashMap<>();

    private volatile boolean running;
    private volatile LoopThread loop; // null until started; start() sets it before it returns
    private final java.util.concurrent.atomic.AtomicLong passes = new java.util.concurrent.atomic.AtomicLong();
    // XIDs by GPU UUID then XID; the driver's XID space is small, so this stays bounded
    private final Map<String, Map<Long, java.util.concurrent.atomic.AtomicLong>> xids =
            new java.util.concurrent.ConcurrentHashMap<>();

    public GpuHealthMonitor(
            NvmlLibrary nvml,
            List<GpuDevice> gpus,
            Duration recoveryDebounce,
            Set<Long> ignoredXids,
            LongSupplier nanoClock) {
        this.nvml = nvml;
        this.gpus = List.copyOf(gpus);
        this.debounceNanos = recoveryDebounce.toNanos();
        this.ignoredXids = Set.copyOf(ignoredXids);
        this.nanoClock = nanoClock;
        for (GpuDevice gpu : gpus) {
            health.put(gpu.uuid(), GpuHealth.healthy(gpu.uuid()));
        }
    }

    /** A monitor for a node where health checks are switched off: every GPU stays Healthy, nothing runs. */
    public static GpuHealthMonitor disabled(List<GpuDevice> gpus) {
        return new GpuHealthMonitor(null, gpus, Duration.ZERO, Set.of(), System::nanoTime);
    }

    /** Called with the full health map after every change (and once on registration). */
    public void addListener(Consumer<Map<String, GpuHealth>> listener) {
        listeners.add(listener);
        listener.accept(current());
    }

    /** The health of every GPU now. */
    public Map<String, GpuHealth> current() {
        synchronized (stateLock) {
            return Map.copyOf(health);
        }
    }

    /** XID critical errors seen since start, by GPU UUID and XID (ignored application XIDs included). */
    public Map<String, Map<Long, Long>> xidCounts() {
        Map<String, Map<Long, Long>> copy = new LinkedHashMap<>();
        xids.forEach((uuid, counts) -> {
            Map<Long, Long> byXid = new LinkedHashMap<>();
            counts.forEach((xid, count) -> byXid.put(xid, count.get()));
            copy.put(uuid, byXid);
        });
        return copy;
    }

    /** Starts watching; returns at once. */
    public synchronized void start() {
        if (nvml == null || running) {
            return;
        }
        running = true;
        loop = LoopThread.start(
                "gpu-health", Thread.ofPlatform().daemon().name("gpu-health"), LoopThread.Stop.AWAIT, this::run);
    }

    /** Passes of the health loop (one per event wait, at most a few seconds apart while it runs), for liveness. */
    public long passes() {
        return passes.get();
    }

    @Override
    public void close() {
        running = false;
        LoopThread.closeIfStarted(loop);
    }

    private void run() {
        while (running) {
            passes.incrementAndGet();
            try (Arena arena = Arena.ofConfined()) {
                EventSet events = setUp(arena);
                if (events == null) {
                    sleep(Math.max(WAIT_TIMEOUT_MS, debounceNanos / 1_000_000 / 2));
                    continue;
                }
                try {
                    watch(arena, events);
                } finally {
                    nvml.nvmlEventSetFree(events.set());
                }
            } catch (RuntimeException | Error e) {
                // A bug or a broken binding must not leave the devices advertised as healthy.
                // (An Error too: the loop goes on after a pause; Loops.restarting guards what escapes.)
                markAllUnhealthy("health checking failed: " + e);
                log.error("event=gpu_health_loop_failed error=\"{}\"", e.toString(), e);
                sleep(1_000);
            }
        }
    }

    private record EventSet(MemorySegment set, Map<Long, GpuDevice> byHandle, Map<String, MemorySegment> handles) {}

    /** Creates the event set and registers every GPU; on failure every GPU is Unhealthy and null is returned. */
    private EventSet setUp(Arena arena) {
        MemorySegment setOut = arena.allocate(ADDRESS);
        int rc = nvml.nvmlEventSetCreate(setOut);
        if (rc != NvmlLibrary.NVML_SUCCESS) {
            markAllUnhealthy("health checking could not start: nvmlEventSetCreate: " + nvml.nvmlErrorString(rc));
            return null;
        }
        MemorySegment set = setOut.get(ADDRESS, 0);
        Map<Long, GpuDevice> byHandle = new HashMap<>();
        Map<String, MemorySegment> handles = new HashMap<>();
        for (GpuDevice gpu : gpus) {
            MemorySegment handleOut = arena.allocate(ADDRESS);
            rc = nvml.nvmlDeviceGetHandleByIndex_v2(gpu.index(), handleOut);
            if (rc != NvmlLibrary.NVML_SUCCESS) {
                markUnhealthy(
                        gpu.uuid(),
                        "health checking could not start: nvmlDeviceGetHandleByIndex_v2: " + nvml.nvmlErrorString(rc));
                continue;
            }
            MemorySegment handle = handleOut.get(ADDRESS, 0);
            rc = nvml.nvmlDeviceRegisterEvents(
                    handle,
                    NvmlLibrary.nvmlEventTypeXidCriticalError | NvmlLibrary.nvmlEventTypeDoubleBitEccError,
                    set);
            if (rc == NvmlLibrary.NVML_ERROR_NOT_SUPPORTED) {
                log.warn("event=gpu_events_not_supported gpu={} detail=\"health from NVML queries only\"", gpu.uuid());
            } else if (rc != NvmlLibrary.NVML_SUCCESS) {
                markUnhealthy(
                        gpu.uuid(),
                        "health checking could not start: nvmlDeviceRegisterEvents: " + nvml.nvmlErrorString(rc));
                continue;
            }
            byHandle.put(handle.address(), gpu);
            handles.put(gpu.uuid(), handle);
        }
        return new EventSet(set, byHandle, handles);
    }

    private void watch(Arena arena, EventSet events) {
        MemorySegment data = arena.allocate(NvmlLayouts.NVML_EVENT_DATA);
        MemorySegment memory = arena.allocate(NvmlLayouts.NVML_MEMORY);
        while (running) {
            passes.incrementAndGet();
            int rc = nvml.nvmlEventSetWait_v2(events.set(), data, WAIT_TIMEOUT_MS);
            if (rc == NvmlLibrary.NVML_SUCCESS) {
                onEvent(events, data);
            } else if (rc != NvmlLibrary.NVML_ERROR_TIMEOUT) {
                markAllUnhealthy("nvmlEventSetWait_v2 failed: " + nvml.nvmlErrorString(rc));
                sleep(WAIT_TIMEOUT_MS);
            }
            probeAndRecover(events, memory);
            if (events.handles().size() < gpus.size()) {
                return; // some GPU could not be registered: set up again (it stays Unhealthy meanwhile)
            }
        }
    }

    private void onEvent(EventSet events, MemorySegment data) {
        MemorySegment device = (MemorySegment) NvmlLayouts.device$vh.get(data, 0L);
        long type = (long) NvmlLayouts.eventType$vh.get(data, 0L);
        long detail = (long) NvmlLayouts.eventData$vh.get(data, 0L);
        GpuDevice gpu = events.byHandle().get(device.address());
        if (gpu == null) {
            log.warn("event=gpu_event_unknown_device type={} data={}", type, detail);
            return;
        }
        if ((type & NvmlLibrary.nvmlEventTypeXidCriticalError) != 0) {
            xids.computeIfAbsent(gpu.uuid(), uuid -> new java.util.concurrent.ConcurrentHashMap<>())
                    .computeIfAbsent(detail, xid -> new java.util.concurrent.atomic.AtomicLong())
                    .incrementAndGet();
            if (ignoredXids.contains(detail)) {
                log.info(
                        "event=gpu_xid_ignored gpu={} xid={} detail=\"application error, GPU stays healthy\"",
                        gpu.uuid(),
                        detail);
                return;
            }
            markUnhealthy(gpu.uuid(), "XID " + detail + " (critical error event)");
        } else if ((type & NvmlLibrary.nvmlEventTypeDoubleBitEccError) != 0) {
            markUnhealthy(gpu.uuid(), "double-bit ECC error");
        }
    }

    /** A cheap NVML query per GPU: failures make it Unhealthy; clean GPUs past the debounce recover. */
    private void probeAndRecover(EventSet events, MemorySegment memory) {
        long now = nanoClock.getAsLong();
        for (GpuDevice gpu : gpus) {
            MemorySegment handle = events.handles().get(gpu.uuid());
            if (handle == null) {
                continue;
            }
            int rc = nvml.nvmlDeviceGetMemoryInfo(handle, memory);
            if (rc != NvmlLibrary.NVML_SUCCESS) {
                markUnhealthy(gpu.uuid(), "NVML query failed: nvmlDeviceGetMemoryInfo: " + nvml.nvmlErrorString(rc));
                continue;
            }
            boolean recovered = false;
            synchronized (stateLock) {
                GpuHealth current = health.get(gpu.uuid());
                Long since = lastProblemNanos.get(gpu.uuid());
                if (!current.healthy() && since != null && now - since >= debounceNanos) {
                    health.put(gpu.uuid(), GpuHealth.healthy(gpu.uuid()));
                    lastProblemNanos.remove(gpu.uuid());
                    recovered = true;
                    log.info(
                            "event=gpu_recovered gpu={} after=\"{} clean\" previous_reason=\"{}\"",
                            gpu.uuid(),
                            Duration.ofNanos(debounceNanos),
                            current.reason());
                }
            }
            if (recovered) {
                publish();
            }
        }
    }

    private void markUnhealthy(String uuid, String reason) {
        boolean changed;
        synchronized (stateLock) {
            lastProblemNanos.put(uuid, nanoClock.getAsLong());
            GpuHealth previous = health.put(uuid, GpuHealth.unhealthy(uuid, reason));
            changed =
                    previous == null || previous.healthy() || !previous.reason().equals(reason);
        }
        if (changed) {
            log.warn("event=gpu_unhealthy gpu={} reason=\"{}\"", uuid, reason);
            publish();
        }
    }

    private void markAllUnhealthy(String reason) {
        for (GpuDevice gpu : gpus) {
            markUnhealthy(gpu.uuid(), reason);
        }
    }

    private void publish() {
        Map<String, GpuHealth> snapshot = current();
        for (Consumer<Map<String, GpuHealth>> listener : listeners) {
            listener.accept(snapshot);
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
