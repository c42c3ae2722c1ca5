package io.omai.simulator.dra;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResult;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimConsumerReference;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.omai.agent.deviceplugin.UnixSocketGrpc;
import io.omai.agent.dra.registration.v1.InfoRequest;
import io.omai.agent.dra.registration.v1.PluginInfo;
import io.omai.agent.dra.registration.v1.RegistrationGrpc;
import io.omai.agent.dra.registration.v1.RegistrationStatus;
import io.omai.simulator.dra.DraPluginClient.ClaimRef;
import io.omai.simulator.dra.DraPluginClient.ClaimResult;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.ClosedWatchServiceException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * kubelet's DRA side for tests, built to what kubelet does rather than to what our agent does.
 *
 * <p><b>Plugin watcher</b> ({@code pkg/kubelet/pluginmanager}): {@code plugins_registry} is scanned at start and
 * watched (inotify, through a {@link WatchService}); a socket whose name does not start with '.' is a plugin.
 * A reconciler (on every event, and every second as kubelet's) compares the sockets present with those
 * registered: a new socket is dialled and asked {@code GetInfo} with a 1 s deadline; its type must be {@code
 * DRAPlugin}; the service taken is the <em>first</em> entry of the plugin's {@code supported_versions} that this
 * kubelet supports (by default {@code v1.DRAPlugin}, {@code v1beta1.DRAPlugin}); the endpoint it names is dialled;
 * then {@code NotifyRegistrationStatus} says true, or false with the reason. A failed registration is retried
 * after a second. A socket that disappears deregisters its plugin; one re-created (another inode) registers
 * anew. Several registrations of one driver may coexist (a rolling update); the newest is used.
 *
 * <p><b>DRA manager</b> ({@code pkg/kubelet/cm/dra}): {@link #prepare(Pod, List)} reads each claim of the pod
 * from the API, requires it allocated and reserved for the pod, groups its claims by the drivers of their
 * allocation results, and calls NodePrepareResources of each driver with those claims (namespace, uid, name);
 * a claim missing from the response or answered with an error fails. {@link #unprepare} is the reverse.
 * {@link #prepareRaw} sends any claims to a driver, for tests of bad claims.
 */
public final class DraKubeletSimulator implements AutoCloseable {
    /** kubelet gives GetInfo one second. */
    static final Duration GET_INFO_TIMEOUT = Duration.ofSeconds(1);

    private static final Duration RECONCILE_PERIOD = Duration.ofSeconds(1);
    private static final Duration RETRY_AFTER = Duration.ofSeconds(1);

    /** One registration attempt of a socket, as the tests see it. */
    public record RegistrationEvent(Path socket, String driver, String service, boolean registered, String error) {}

    private record Registered(Object fileKey, DraPluginClient client) {}

    private final Path registryDir;
    private final List<String> supportedServices;
    private final KubernetesClient kube;
    private final Duration callTimeout;
    private final WatchService watcher;
    private final Thread reconciler;
    private final List<RegistrationEvent> events = new CopyOnWriteArrayList<>();

    @GuardedBy("this")
    private final Map<Path, Registered> registered = new HashMap<>();

    @GuardedBy("this")
    private final Map<Path, Long> failedAt = new HashMap<>();

    private volatile boolean closed;

    private DraKubeletSimulator(
            Path registryDir, List<String> supportedServices, KubernetesClient kube, Duration callTimeout)
            throws IOException {
        this.registryDir = registryDir;
        this.supportedServices = List.copyOf(supportedServices);
        this.kube = kube;
        this.callTimeout = callTimeout;
        Files.createDirectories(registryDir);
        this.watcher = registryDir.getFileSystem().newWatchService();
        registryDir.register(
                watcher,
                StandardWatchEventKinds.ENTRY_CREATE,
                StandardWatchEventKinds.ENTRY_DELETE,
                StandardWatchEventKinds.ENTRY_MODIFY);
        this.reconciler =
                Thread.ofPlatform().daemon().name("dra-kubelet-plugin-watcher").unstarted(this::watch);
    }

    /** A kubelet supporting {@code v1.DRAPlugin} and {@code v1beta1.DRAPlugin}, watching {@code registryDir}. */
    public static DraKubeletSimulator start(Path registryDir, KubernetesClient kube) {
        return start(registryDir, kube, List.of(DraPluginClient.V1, DraPluginClient.V1BETA1));
    }

    /** A kubelet supporting only {@code supportedServices} (e.g. an older kubelet knowing v1beta1 only). */
    public static DraKubeletSimulator start(Path registryDir, KubernetesClient kube, List<String> supportedServices) {
        try {
            DraKubeletSimulator kubelet =
                    new DraKubeletSimulator(registryDir, supportedServices, kube, Duration.ofSeconds(30));
            kubelet.reconcile(); // the initial scan: sockets already there register at start
            kubelet.reconciler.start();
            return kubelet;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot watch " + registryDir, e);
        }
    }

    public Path registryDir() {
        return registryDir;
    }

    /** Every registration attempt so far, in order (failed ones with their error). */
    public List<RegistrationEvent> events() {
        return List.copyOf(events);
    }

    /** The plugin used for {@code driver} now (the newest registration), if any. */
    public synchronized java.util.Optional<DraPluginClient> plugin(String driver) {
        return registered.values().stream()
                .map(Registered::client)
                .filter(client -> client.driver().equals(driver))
                .max((a, b) -> Long.compare(a.registeredNanos(), b.registeredNanos()));
    }

    /** Waits until {@code driver} is registered; fails with the registration events if it is not in time. */
    public DraPluginClient awaitPlugin(String driver, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            var plugin = plugin(driver);
            if (plugin.isPresent()) {
                return plugin.get();
            }
            sleep(Duration.ofMillis(10));
        }
        throw new AssertionError("DRA driver " + driver + " did not register with kubelet within " + timeout
                + "; registration events: " + events());
    }

    /** Waits until no plugin of {@code driver} is registered. */
    public void awaitDeregistered(String driver, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (plugin(driver).isEmpty()) {
                return;
            }
            sleep(Duration.ofMillis(10));
        }
        throw new AssertionError("DRA driver " + driver + " is still registered after " + timeout);
    }

    /** A claim could not be prepared or unprepared for a pod: kubelet fails the pod's start with this. */
    public static final class ClaimFailedException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        ClaimFailedException(String message) {
            super(message);
        }
    }

    /**
     * Prepares the claims {@code claimNames} (in the pod's namespace) for {@code pod}, as kubelet does before
     * it starts the pod's containers; returns each claim's result by name. Fails with {@link
     * ClaimFailedException} naming the claim when one is not allocated, not reserved for the pod, of a driver
     * not registered, left out of a response, or answered with an error.
     */
    public Map<String, ClaimResult> prepare(Pod pod, List<String> claimNames) {
        Map<String, List<ResourceClaim>> byDriver = claimsByDriver(pod, claimNames);
        Map<String, ClaimResult> results = new LinkedHashMap<>();
        for (Map.Entry<String, List<ResourceClaim>> entry : byDriver.entrySet()) {
            DraPluginClient plugin = plugin(entry.getKey())
                    .orElseThrow(() -> new ClaimFailedException("DRA driver " + entry.getKey()
                            + " is not registered with kubelet; claims " + names(entry.getValue())));
            Map<String, ClaimResult> answered = plugin.prepare(refs(entry.getValue()));
            for (ResourceClaim claim : entry.getValue()) {
                ClaimResult result = answered.get(claim.getMetadata().getUid());
                if (!result.ok()) {
                    throw new ClaimFailedException("NodePrepareResources failed for claim "
                            + claim.getMetadata().getNamespace() + "/"
                            + claim.getMetadata().getName() + ": "
                            + result.error());
                }
                results.put(claim.getMetadata().getName(), result);
            }
        }
        return results;
    }

    /** Unprepares the claims {@code claimNames} of {@code pod}, as kubelet does once the pod has stopped. */
    public void unprepare(Pod pod, List<String> claimNames) {
        Map<String, List<ResourceClaim>> byDriver = claimsByDriver(pod, claimNames);
        for (Map.Entry<String, List<ResourceClaim>> entry : byDriver.entrySet()) {
            DraPluginClient plugin = plugin(entry.getKey())
                    .orElseThrow(() -> new ClaimFailedException("DRA driver " + entry.getKey()
                            + " is not registered with kubelet; claims " + names(entry.getValue())));
            Map<String, ClaimResult> answered = plugin.unprepare(refs(entry.getValue()));
            for (ResourceClaim claim : entry.getValue()) {
                ClaimResult result = answered.get(claim.getMetadata().getUid());
                if (!result.ok()) {
                    throw new ClaimFailedException("NodeUnprepareResources failed for claim "
                            + claim.getMetadata().getName() + ": " + result.error());
                }
            }
        }
    }

    /** NodePrepareResources of {@code driver} with exactly {@code claims} (no checks: tests of bad claims). */
    public Map<String, ClaimResult> prepareRaw(String driver, List<ClaimRef> claims) {
        return plugin(driver)
                .orElseThrow(() -> new ClaimFailedException("DRA driver " + driver + " is not registered"))
                .prepare(claims);
    }

    /** NodeUnprepareResources of {@code driver} with exactly {@code claims}. */
    public Map<String, ClaimResult> unprepareRaw(String driver, List<ClaimRef> claims) {
        return plugin(driver)
                .orElseThrow(() -> new ClaimFailedException("DRA driver " + driver + " is not registered"))
                .unprepare(claims);
    }

    /** The claim as kubelet names it to a driver. */
    public static ClaimRef ref(ResourceClaim claim) {
        return new ClaimRef(
                claim.getMetadata().getNamespace(),
                claim.getMetadata().getUid(),
                claim.getMetadata().getName());
    }

    private Map<String, List<ResourceClaim>> claimsByDriver(Pod pod, List<String> claimNames) {
        if (kube == null) {
            throw new IllegalStateException("this DRA kubelet has no API client; use prepareRaw");
        }
        String namespace = pod.getMetadata().getNamespace();
        Map<String, List<ResourceClaim>> byDriver = new LinkedHashMap<>();
        for (String name : claimNames) {
            ResourceClaim claim = kube.resources(ResourceClaim.class)
                    .inNamespace(namespace)
                    .withName(name)
                    .get();
            if (claim == null) {
                throw new ClaimFailedException("ResourceClaim " + namespace + "/" + name + " does not exist");
            }
            if (claim.getStatus() == null
                    || claim.getStatus().getAllocation() == null
                    || claim.getStatus().getAllocation().getDevices() == null) {
                throw new ClaimFailedException("ResourceClaim " + namespace + "/" + name + " is not allocated");
            }
            boolean reserved = claim.getStatus().getReservedFor() != null
                    && claim.getStatus().getReservedFor().stream()
                            .map(ResourceClaimConsumerReference::getUid)
                            .anyMatch(
                                    uid -> Objects.equals(uid, pod.getMetadata().getUid()));
            if (!reserved) {
                throw new ClaimFailedException("pod " + namespace + "/"
                        + pod.getMetadata().getName() + " is not in status.reservedFor of ResourceClaim " + name);
            }
            Set<String> drivers = new LinkedHashSet<>();
            for (DeviceRequestAllocationResult result :
                    claim.getStatus().getAllocation().getDevices().getResults()) {
                drivers.add(result.getDriver());
            }
            for (String driver : drivers) {
                byDriver.computeIfAbsent(driver, d -> new ArrayList<>()).add(claim);
            }
        }
        return byDriver;
    }

    private static List<ClaimRef> refs(List<ResourceClaim> claims) {
        return claims.stream().map(DraKubeletSimulator::ref).toList();
    }

    private static List<String> names(List<ResourceClaim> claims) {
        return claims.stream().map(claim -> claim.getMetadata().getName()).toList();
    }

    private void watch() {
        while (!closed) {
            try {
                WatchKey key = watcher.poll(RECONCILE_PERIOD.toMillis(), TimeUnit.MILLISECONDS);
                if (key != null) {
                    key.pollEvents(); // which file changed does not matter: the reconciler looks at them all
                    key.reset();
                }
                reconcile();
            } catch (ClosedWatchServiceException e) {
                return;
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                // a reconcile that failed on one file must not stop the watcher; the next event retries
                events.add(new RegistrationEvent(registryDir, "", "", false, "reconcile failed: " + e));
            }
        }
    }

    /** Brings the registrations in line with the sockets in the registry directory. */
    synchronized void reconcile() {
        if (closed) {
            return;
        }
        Map<Path, Object> present = new HashMap<>();
        try (Stream<Path> files = Files.list(registryDir)) {
            for (Path file : files.toList()) {
                if (file.getFileName().toString().startsWith(".")) {
                    continue; // kubelet ignores dot files
                }
                try {
                    BasicFileAttributes attributes =
                            Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                    if (attributes.isOther()) {
                        present.put(file, attributes.fileKey());
                    }
                } catch (IOException e) {
                    // gone between the listing and the look: the next pass sees it gone
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + registryDir, e);
        }
        for (var it = registered.entrySet().iterator(); it.hasNext(); ) {
            var entry = it.next();
            if (!Objects.equals(present.get(entry.getKey()), entry.getValue().fileKey())) {
                entry.getValue().client().close(); // removed or replaced: deregister
                it.remove();
            }
        }
        failedAt.keySet().retainAll(present.keySet());
        for (Map.Entry<Path, Object> socket : present.entrySet()) {
            if (registered.containsKey(socket.getKey())) {
                continue;
            }
            Long failed = failedAt.get(socket.getKey());
            if (failed != null && System.nanoTime() - failed < RETRY_AFTER.toNanos()) {
                continue;
            }
            DraPluginClient client = register(socket.getKey());
            if (client == null) {
                failedAt.put(socket.getKey(), System.nanoTime());
            } else {
                failedAt.remove(socket.getKey());
                registered.put(socket.getKey(), new Registered(socket.getValue(), client));
            }
        }
    }

    /** kubelet's RegisterPlugin operation for one socket; null when it failed (recorded in {@link #events}). */
    private DraPluginClient register(Path socket) {
        ManagedChannel channel = UnixSocketGrpc.channel(socket);
        try {
            RegistrationGrpc.RegistrationBlockingStub stub = RegistrationGrpc.newBlockingStub(channel);
            PluginInfo info;
            try {
                info = stub.withDeadlineAfter(GET_INFO_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
                        .getInfo(InfoRequest.getDefaultInstance());
            } catch (StatusRuntimeException e) {
                events.add(new RegistrationEvent(socket, "", "", false, "GetInfo failed: " + e.getStatus()));
                return null;
            }
            String problem = null;
            String service = null;
            if (!info.getType().equals("DRAPlugin")) {
                problem = "no handler registered for plugin type: " + info.getType();
            } else if (info.getName().isEmpty()) {
                problem = "the plugin's name (the DRA driver name) is empty";
            } else if (info.getSupportedVersionsList().isEmpty()) {
                problem = "empty list of supported gRPC services (aka API versions)";
            } else {
                for (String offered : info.getSupportedVersionsList()) {
                    if (supportedServices.contains(offered)) {
                        service = offered; // the plugin's order decides, not kubelet's
                        break;
                    }
                }
                if (service == null) {
                    problem = "none of the supported gRPC services (aka API versions) "
                            + info.getSupportedVersionsList() + " are supported by the kubelet " + supportedServices;
                } else if (info.getEndpoint().isEmpty()) {
                    problem = "the plugin's endpoint is empty";
                }
            }
            DraPluginClient client = null;
            if (problem == null) {
                client = new DraPluginClient(info.getName(), Path.of(info.getEndpoint()), service, callTimeout);
                if (!client.connect(Duration.ofSeconds(10))) {
                    client.close();
                    client = null;
                    problem = "cannot connect to the DRA service endpoint " + info.getEndpoint();
                }
            }
            try {
                stub.withDeadlineAfter(10, TimeUnit.SECONDS)
                        .notifyRegistrationStatus(RegistrationStatus.newBuilder()
                                .setPluginRegistered(problem == null)
                                .setError(problem == null ? "" : problem)
                                .build());
            } catch (StatusRuntimeException e) {
                // kubelet logs a failed notification and keeps the registration it decided on
            }
            events.add(new RegistrationEvent(
                    socket,
                    info.getName(),
                    service == null ? "" : service,
                    problem == null,
                    Objects.toString(problem, "")));
            return client;
        } finally {
            UnixSocketGrpc.close(channel);
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            watcher.close();
        } catch (IOException e) {
            // closing a watch service only releases the inotify descriptor
        }
        reconciler.interrupt();
        try {
            reconciler.join(Duration.ofSeconds(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        synchronized (this) {
            registered.values().forEach(entry -> entry.client().close());
            registered.clear();
        }
    }

    private static void sleep(Duration duration) {
        try {
            Thread.sleep(duration);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }
}
