package io.omai.agent.deviceplugin;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.omai.agent.deviceplugin.v1beta1.RegisterRequest;
import io.omai.agent.deviceplugin.v1beta1.RegistrationGrpc;
import io.omai.agent.lifecycle.LoopThread;
import java.io.IOException;
import java.nio.file.ClosedWatchServiceException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchEvent;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the plugin registered with kubelet. Waits for {@code kubelet.sock} before the first registration, and
 * re-registers (idempotently, with capped exponential backoff) whenever kubelet may have restarted, seen three
 * ways: a new {@code kubelet.sock} (a WatchService on the device-plugin directory, plus a 1 s check of the
 * socket's inode in case an event is lost), our own socket deleted (kubelet's cleanup; the server is rebound),
 * and kubelet's ListAndWatch stream ending with none left open. A failed registration (a dead kubelet leaves its
 * socket file behind: ECONNREFUSED) waits out the back-off only while that same socket file stays; a new
 * {@code kubelet.sock} cuts it short.
 */
public final class KubeletRegistrar implements AutoCloseable {
    static final String KUBELET_SOCKET = "kubelet.sock";
    static final String API_VERSION = "v1beta1";
    private static final Logger log = LoggerFactory.getLogger(KubeletRegistrar.class);
    private static final Duration INITIAL_BACKOFF = Duration.ofMillis(50);
    private static final Duration STREAM_SETTLE = Duration.ofSeconds(1);

    private final Path pluginDir;
    private final Path kubeletSocket;
    private final String resourceName;
    private final PluginSocketServer server;
    private final IntSupplier openStreams;
    private final Duration backoffMax;

    private final Semaphore wakeUp = new Semaphore(0);
    private final AtomicBoolean streamEnded = new AtomicBoolean();
    private final AtomicInteger registrations = new AtomicInteger();
    private final AtomicInteger kubeletRestarts = new AtomicInteger();
    private final AtomicLong loopPasses = new AtomicLong();
    private volatile boolean running;
    private volatile long lastRegisteredNanos;
    private LoopThread loop; // null until started
    private LoopThread watcher;
    private WatchService watchService;

    public KubeletRegistrar(
            Path pluginDir,
            String resourceName,
            PluginSocketServer server,
            IntSupplier openStreams,
            Duration backoffMax) {
        this.pluginDir = pluginDir;
        this.kubeletSocket = pluginDir.resolve(KUBELET_SOCKET);
        this.resourceName = resourceName;
        this.server = server;
        this.openStreams = openStreams;
        this.backoffMax = backoffMax;
    }

    public synchronized void start() throws IOException {
        running = true;
        Files.createDirectories(pluginDir);
        WatchService watching = FileSystems.getDefault().newWatchService();
        watchService = watching;
        watcher = LoopThread.start(
                "kubelet-socket-watch",
                Thread.ofVirtual().name("kubelet-socket-watch"),
                () -> watchDirectory(watching));
        wakeUp.release(); // the first pass looks for kubelet at once instead of after a second's wait
        loop = LoopThread.start(
                "kubelet-registration", Thread.ofVirtual().name("kubelet-registration"), this::registrationLoop);
    }

    /** Successful Register calls so far. */
    public int registrations() {
        return registrations.get();
    }

    /** Re-registrations after kubelet restarted (a new kubelet.sock, or our socket removed), for metrics. */
    public int kubeletRestarts() {
        return kubeletRestarts.get();
    }

    /** Passes of the registration loop (at least one a second while it is not stuck), for liveness. */
    public long loopPasses() {
        return loopPasses.get();
    }

    /** kubelet's stream ended: if no stream is left open soon, register again. */
    public void streamEnded() {
        streamEnded.set(true);
        wakeUp.release();
    }

    private void watchDirectory(WatchService watchService) {
        while (running) {
            WatchKey key;
            try {
                key = pluginDir.register(
                        watchService, StandardWatchEventKinds.ENTRY_CREATE, StandardWatchEventKinds.ENTRY_DELETE);
            } catch (IOException e) {
                sleep(Duration.ofMillis(500)); // the directory itself is gone for now; the 1 s check still runs
                continue;
            } catch (ClosedWatchServiceException e) {
                return;
            }
            try {
                while (running) {
                    WatchKey ready = watchService.take();
                    for (WatchEvent<?> event : ready.pollEvents()) {
                        Object name = event.context();
                        if (StandardWatchEventKinds.OVERFLOW.equals(event.kind())
                                || name == null
                                || name.toString().equals(KUBELET_SOCKET)
                                || name.toString()
                                        .equals(server.socket().getFileName().toString())) {
                            wakeUp.release();
                        }
                    }
                    if (!ready.reset()) {
                        break; // directory deleted: register the watch again
                    }
                }
            } catch (InterruptedException | ClosedWatchServiceException e) {
                return;
            } finally {
                key.cancel();
            }
        }
    }

    private void registrationLoop() {
        Object registeredWith = null;
        // A failed registration is retried after the back-off, or at once when kubelet.sock is a new file: the
        // back-off is about the kubelet that refused, and a kubelet that has come back is a different one.
        Object failedWith = null;
        String failedReason = null;
        long retryAtNanos = 0;
        Duration backoff = INITIAL_BACKOFF;
        boolean waitingLogged = false;
        while (running) {
            loopPasses.incrementAndGet();
            try {
                wakeUp.tryAcquire(waitNanos(failedWith, retryAtNanos), TimeUnit.NANOSECONDS);
                wakeUp.drainPermits();
            } catch (InterruptedException e) {
                return;
            }
            if (!running) {
                return;
            }
            Object kubeletKey = null;
            String reason = null;
            try {
                boolean restarted = server.ensureListening();
                kubeletKey = PluginSocketServer.fileKey(kubeletSocket);
                if (kubeletKey == null) {
                    if (!waitingLogged) {
                        log.info("event=waiting_for_kubelet socket={}", kubeletSocket);
                        waitingLogged = true;
                    }
                    registeredWith = null;
                    failedWith = null;
                    backoff = INITIAL_BACKOFF;
                    continue;
                }
                waitingLogged = false;
                reason = restarted
                        ? "socket_rebound"
                        : !Objects.equals(kubeletKey, registeredWith) ? "kubelet_socket" : null;
                if (failedWith != null) {
                    if (restarted || !kubeletKey.equals(failedWith)) {
                        backoff = INITIAL_BACKOFF; // kubelet is back: register now, whatever failed before
                    } else if (System.nanoTime() - retryAtNanos < 0) {
                        continue; // the same kubelet.sock that refused: wait out the back-off
                    } else if (reason == null) {
                        reason = failedReason;
                    }
                    failedWith = null;
                }
                if (reason == null && streamEnded.get() && noStreamAfterSettling()) {
                    reason = "stream_lost";
                }
                if (reason == null) {
                    continue;
                }
                streamEnded.set(false);
                long startedNanos = System.nanoTime();
                register();
                registeredWith = kubeletKey;
                backoff = INITIAL_BACKOFF;
                if (registrations.get() > 1 && !reason.equals("stream_lost")) {
                    kubeletRestarts.incrementAndGet();
                }
                log.info(
                        "event=registered resource={} endpoint={} registration={} reason={} took_ms={}",
                        resourceName,
                        server.socket().getFileName(),
                        registrations.get(),
                        reason,
                        (System.nanoTime() - startedNanos) / 1_000_000);
            } catch (IOException | StatusRuntimeException e) {
                log.warn(
                        "event=registration_failed resource={} retry_in_ms={} error=\"{}\"",
                        resourceName,
                        backoff.toMillis(),
                        e.getMessage());
                failedWith = kubeletKey != null ? kubeletKey : PluginSocketServer.fileKey(kubeletSocket);
                failedReason = reason != null ? reason : "retry";
                retryAtNanos = System.nanoTime() + backoff.toNanos();
                backoff = backoff.multipliedBy(2).compareTo(backoffMax) > 0 ? backoffMax : backoff.multipliedBy(2);
            } catch (RuntimeException e) {
                log.error("event=registration_loop_error error=\"{}\"", e.toString(), e);
                sleep(backoff);
                wakeUp.release();
            }
        }
    }

    /** How long the loop may sleep: until a pending retry is due, and never more than a second (inode check). */
    private static long waitNanos(Object failedWith, long retryAtNanos) {
        long second = TimeUnit.SECONDS.toNanos(1);
        return failedWith == null ? second : Math.max(0, Math.min(second, retryAtNanos - System.nanoTime()));
    }

    private boolean noStreamAfterSettling() {
        long deadline = System.nanoTime() + STREAM_SETTLE.toNanos();
        // Right after a registration kubelet has not opened its stream yet; give it the settle time too.
        long sinceRegistration = System.nanoTime() - lastRegisteredNanos;
        if (sinceRegistration < STREAM_SETTLE.toNanos()) {
            deadline += STREAM_SETTLE.toNanos() - sinceRegistration;
        }
        while (System.nanoTime() < deadline && running) {
            if (openStreams.getAsInt() > 0) {
                streamEnded.set(false);
                return false;
            }
            sleep(Duration.ofMillis(20));
        }
        return openStreams.getAsInt() == 0;
    }

    private void register() {
        ManagedChannel channel = UnixSocketGrpc.channel(kubeletSocket);
        try {
            RegistrationGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(5, TimeUnit.SECONDS)
                    .register(RegisterRequest.newBuilder()
                            .setVersion(API_VERSION)
                            .setEndpoint(server.socket().getFileName().toString())
                            .setResourceName(resourceName)
                            .setOptions(DevicePluginService.OPTIONS)
                            .build());
            registrations.incrementAndGet();
            lastRegisteredNanos = System.nanoTime();
        } finally {
            UnixSocketGrpc.close(channel);
        }
    }

    private static void sleep(Duration duration) {
        try {
            Thread.sleep(duration);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        LoopThread l;
        LoopThread w;
        synchronized (this) {
            running = false;
            l = loop;
            w = watcher;
            try {
                if (watchService != null) {
                    watchService.close();
                }
            } catch (IOException e) {
                log.debug("watch service close failed", e);
            }
        }
        wakeUp.release();
        for (LoopThread t : new LoopThread[] {l, w}) {
            if (t != null) {
                t.close();
            }
        }
    }
}
