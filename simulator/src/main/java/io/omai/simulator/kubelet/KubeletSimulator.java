package io.omai.simulator.kubelet;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.omai.agent.deviceplugin.UnixSocketGrpc;
import io.omai.agent.deviceplugin.podresources.v1.AllocatableResourcesRequest;
import io.omai.agent.deviceplugin.podresources.v1.AllocatableResourcesResponse;
import io.omai.agent.deviceplugin.podresources.v1.ContainerDevices;
import io.omai.agent.deviceplugin.podresources.v1.GetPodResourcesRequest;
import io.omai.agent.deviceplugin.podresources.v1.GetPodResourcesResponse;
import io.omai.agent.deviceplugin.podresources.v1.ListPodResourcesRequest;
import io.omai.agent.deviceplugin.podresources.v1.ListPodResourcesResponse;
import io.omai.agent.deviceplugin.podresources.v1.PodResources;
import io.omai.agent.deviceplugin.podresources.v1.PodResourcesListerGrpc;
import io.omai.agent.deviceplugin.v1beta1.Device;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.RegisterRequest;
import io.omai.agent.deviceplugin.v1beta1.RegistrationGrpc;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Predicate;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A kubelet for tests, over real unix sockets: the Registration service on {@code <dir>/kubelet.sock}, the
 * PodResources service on its own socket, and the device manager's client side — after a Register it dials the
 * plugin, asks GetDevicePluginOptions and keeps a ListAndWatch stream open, as kubelet does. {@link #admit} runs
 * the admission path (GetPreferredAllocation, then Allocate, then records the container in PodResources);
 * {@link #restart} behaves like a kubelet restart: servers and streams go away, every socket in the
 * device-plugin directory is deleted, and a new kubelet.sock appears; {@link #exitLeavingStaleSocket} and
 * {@link #comeBack} split it in two, with kubelet down (its socket file left behind) in between.
 */
public final class KubeletSimulator implements AutoCloseable {
    static final String API_VERSION = "v1beta1";
    private static final Pattern RESOURCE_NAME =
            Pattern.compile("[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9][-A-Za-z0-9_.]*");

    private final Path devicePluginDir;
    private final Path podResourcesSocket;
    private final PodResourcesTable podResources = new PodResourcesTable();
    private final Map<String, PluginEndpoint> endpoints = new ConcurrentHashMap<>();
    private final List<Registration> registrations = new CopyOnWriteArrayList<>();
    private final List<String> refusedRegistrations = new CopyOnWriteArrayList<>();

    private volatile int generation = -1;
    private volatile long startedNanos;

    @GuardedBy("this")
    private Server registrationServer;

    @GuardedBy("this")
    private Server podResourcesServer;

    private KubeletSimulator(Path devicePluginDir, Path podResourcesSocket) {
        this.devicePluginDir = devicePluginDir;
        this.podResourcesSocket = podResourcesSocket;
    }

    /** Starts a kubelet serving {@code <devicePluginDir>/kubelet.sock} and the PodResources socket. */
    public static KubeletSimulator start(Path devicePluginDir, Path podResourcesSocket) {
        KubeletSimulator kubelet = new KubeletSimulator(devicePluginDir, podResourcesSocket);
        kubelet.startServers();
        return kubelet;
    }

    public Path devicePluginDir() {
        return devicePluginDir;
    }

    public Path kubeletSocket() {
        return devicePluginDir.resolve("kubelet.sock");
    }

    public Path podResourcesSocket() {
        return podResourcesSocket;
    }

    /** What PodResources List answers; tests add and remove pods here. */
    public PodResourcesTable podResources() {
        return podResources;
    }

    /**
     * {@link System#nanoTime()} when the current instance began listening ({@link Registration#nanosSinceKubeletStart}
     * counts from here), so a caller can place a registration on its own clock.
     */
    public long startedNanos() {
        return startedNanos;
    }

    /** The current kubelet instance: 0 at start, +1 per restart. */
    public int generation() {
        return generation;
    }

    private synchronized void startServers() {
        try {
            podResourcesServer = UnixSocketGrpc.startServer(podResourcesSocket, List.of(new PodResourcesService()));
            generation++;
            startedNanos = System.nanoTime();
            registrationServer =
                    UnixSocketGrpc.startServer(kubeletSocket(), List.of(new RegistrationService(generation)));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start the kubelet simulator in " + devicePluginDir, e);
        }
    }

    /**
     * Restarts like kubelet: its servers and every ListAndWatch stream end, every socket in the device-plugin
     * directory is removed (plugins' included; other files stay), then kubelet.sock comes back. Pods and their
     * devices are kept, as kubelet's checkpoint keeps them.
     */
    public synchronized void restart() {
        stopServersAndStreams();
        comeBack();
    }

    /**
     * kubelet exits (crash, {@code systemctl stop}) and is not back yet: its servers and every ListAndWatch
     * stream end, but {@code kubelet.sock} stays behind — the same file, nobody listening on it, so a plugin's
     * Register fails with ECONNREFUSED — and the plugins' sockets stay too. {@link #comeBack} starts it again.
     */
    public synchronized void exitLeavingStaleSocket() {
        // The gRPC server unlinks its socket file when it closes; a dead kubelet's file stays. Keep the file aside
        // while the server closes, then put it back: same inode, nothing listening on it.
        Path stash = devicePluginDir.resolve(".kubelet.sock.exited");
        try {
            Files.move(kubeletSocket(), stash, StandardCopyOption.ATOMIC_MOVE);
            stopServersAndStreams();
            Files.move(stash, kubeletSocket(), StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot leave a stale kubelet.sock in " + devicePluginDir, e);
        }
    }

    /**
     * kubelet starts as the real one does (after {@link #exitLeavingStaleSocket}, or inside {@link #restart}):
     * every socket in the device-plugin directory is removed — the stale kubelet.sock and the plugins' sockets —
     * and kubelet.sock is listened on anew. Its {@link Registration#nanosSinceKubeletStart} count from here.
     */
    public synchronized void comeBack() {
        try (Stream<Path> files = Files.list(devicePluginDir)) {
            for (Path file : files.toList()) {
                if (isSocket(file)) {
                    Files.deleteIfExists(file);
                }
            }
            Files.deleteIfExists(podResourcesSocket);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot clean " + devicePluginDir, e);
        }
        startServers();
    }

    private static boolean isSocket(Path file) {
        try {
            return Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS)
                    .isOther();
        } catch (IOException e) {
            return false;
        }
    }

    @GuardedBy("this")
    private void stopServersAndStreams() {
        UnixSocketGrpc.stop(registrationServer, 200);
        UnixSocketGrpc.stop(podResourcesServer, 200);
        endpoints.values().forEach(PluginEndpoint::close);
        endpoints.clear();
    }

    /** Every registration accepted so far, in order. */
    public List<Registration> registrations() {
        return List.copyOf(registrations);
    }

    /** Register calls refused (wrong version, bad name), with the reason. */
    public List<String> refusedRegistrations() {
        return List.copyOf(refusedRegistrations);
    }

    /** Waits until the current kubelet instance has a registration for {@code resource} with a stream open. */
    public Registration awaitRegistration(String resource, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            int current = generation;
            PluginEndpoint endpoint = endpoints.get(resource);
            if (endpoint != null && endpoint.generation() == current && endpoint.streaming()) {
                for (Registration registration : registrations.reversed()) {
                    if (registration.resourceName().equals(resource) && registration.kubeletGeneration() == current) {
                        return registration;
                    }
                }
            }
            sleep(Duration.ofMillis(5));
        }
        throw new AssertionError("no registration of " + resource + " with kubelet generation " + generation
                + " within " + timeout + "; registrations so far: " + registrations + "; refused: "
                + refusedRegistrations);
    }

    /** The plugin registered for {@code resource}, as kubelet's device manager sees it. */
    public PluginEndpoint plugin(String resource) {
        PluginEndpoint endpoint = endpoints.get(resource);
        if (endpoint == null) {
            throw new IllegalStateException(resource + " is not registered with kubelet generation " + generation);
        }
        return endpoint;
    }

    /** The latest ListAndWatch list of {@code resource}. */
    public List<Device> devices(String resource) {
        return plugin(resource).devices();
    }

    /** Waits until the latest ListAndWatch list of {@code resource} satisfies {@code condition}. */
    public List<Device> awaitDevices(String resource, Predicate<List<Device>> condition, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            PluginEndpoint endpoint = endpoints.get(resource);
            if (endpoint != null && condition.test(endpoint.devices())) {
                return endpoint.devices();
            }
            sleep(Duration.ofMillis(10));
        }
        throw new AssertionError("ListAndWatch of " + resource + " never reached the expected state within " + timeout);
    }

    /**
     * Admits one container asking for {@code size} units of {@code resource}, as kubelet does: candidates are the
     * healthy IDs no container holds; with preferred allocation on, the plugin's choice is taken (gaps filled
     * from the candidates); then Allocate; then the container is recorded in PodResources.
     */
    public Admission admit(String namespace, String pod, String container, String resource, int size) {
        PluginEndpoint plugin = plugin(resource);
        List<String> available = new ArrayList<>();
        var held = podResources.held(resource);
        for (Device device : plugin.devices()) {
            if (device.getHealth().equals("Healthy") && !held.contains(device.getID())) {
                available.add(device.getID());
            }
        }
        if (available.size() < size) {
            throw new IllegalStateException("UnexpectedAdmissionError: " + size + " of " + resource + " requested, "
                    + available.size() + " available");
        }
        List<String> chosen = new ArrayList<>();
        if (plugin.options().getGetPreferredAllocationAvailable()) {
            for (String id : plugin.preferredAllocation(available, List.of(), size)) {
                if (available.contains(id) && !chosen.contains(id) && chosen.size() < size) {
                    chosen.add(id);
                }
            }
        }
        for (String id : available) {
            if (chosen.size() == size) {
                break;
            }
            if (!chosen.contains(id)) {
                chosen.add(id); // kubelet fills what the hint left open arbitrarily
            }
        }
        var response = plugin.allocate(chosen);
        podResources.put(new PodResourcesTable.ContainerEntry(namespace, pod, container, resource, chosen));
        return new Admission(chosen, response);
    }

    /** What {@link #admit} did: the IDs chosen and the plugin's answer for the container. */
    public record Admission(
            List<String> deviceIds, io.omai.agent.deviceplugin.v1beta1.ContainerAllocateResponse response) {}

    @Override
    public synchronized void close() {
        stopServersAndStreams();
        try {
            Files.deleteIfExists(kubeletSocket());
            Files.deleteIfExists(podResourcesSocket);
        } catch (IOException e) {
            // best effort: the test's temporary directory goes away anyway
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

    private final class RegistrationService extends RegistrationGrpc.RegistrationImplBase {
        private final int serverGeneration;

        RegistrationService(int serverGeneration) {
            this.serverGeneration = serverGeneration;
        }

        @Override
        public void register(RegisterRequest request, StreamObserver<Empty> response) {
            long receivedNanos = System.nanoTime();
            String problem = null;
            if (!request.getVersion().equals(API_VERSION)) {
                problem = "version '" + request.getVersion() + "' is not supported; expected " + API_VERSION;
            } else if (!RESOURCE_NAME.matcher(request.getResourceName()).matches()) {
                problem = "'" + request.getResourceName() + "' is not an extended resource name";
            } else if (request.getEndpoint().isEmpty() || request.getEndpoint().contains("/")) {
                problem = "endpoint '" + request.getEndpoint() + "' is not a socket file name";
            }
            if (problem != null) {
                refusedRegistrations.add(problem);
                response.onError(
                        Status.INVALID_ARGUMENT.withDescription(problem).asException());
                return;
            }
            registrations.add(new Registration(
                    request.getResourceName(), request.getEndpoint(), serverGeneration, receivedNanos - startedNanos));
            response.onNext(Empty.getDefaultInstance());
            response.onCompleted();
            // As kubelet: the endpoint is dialled after Register returns; the newest registration wins.
            Thread.ofVirtual()
                    .name("kubelet-endpoint-" + request.getResourceName())
                    .start(() -> {
                        PluginEndpoint endpoint = PluginEndpoint.connect(
                                devicePluginDir.resolve(request.getEndpoint()),
                                request.getResourceName(),
                                serverGeneration);
                        PluginEndpoint previous = endpoints.put(request.getResourceName(), endpoint);
                        if (previous != null) {
                            previous.close();
                        }
                    });
        }
    }

    private final class PodResourcesService extends PodResourcesListerGrpc.PodResourcesListerImplBase {
        @Override
        public void list(ListPodResourcesRequest request, StreamObserver<ListPodResourcesResponse> response) {
            response.onNext(ListPodResourcesResponse.newBuilder()
                    .addAllPodResources(podResources.asPodResources())
                    .build());
            response.onCompleted();
        }

        @Override
        public void getAllocatableResources(
                AllocatableResourcesRequest request, StreamObserver<AllocatableResourcesResponse> response) {
            AllocatableResourcesResponse.Builder answer = AllocatableResourcesResponse.newBuilder();
            endpoints.forEach((resource, endpoint) -> answer.addDevices(ContainerDevices.newBuilder()
                    .setResourceName(resource)
                    .addAllDeviceIds(endpoint.devices().stream()
                            .filter(d -> d.getHealth().equals("Healthy"))
                            .map(Device::getID)
                            .toList())));
            podResources
                    .otherAllocatable()
                    .forEach((resource, ids) -> answer.addDevices(ContainerDevices.newBuilder()
                            .setResourceName(resource)
                            .addAllDeviceIds(ids)));
            response.onNext(answer.build());
            response.onCompleted();
        }

        @Override
        public void get(GetPodResourcesRequest request, StreamObserver<GetPodResourcesResponse> response) {
            for (PodResources pod : podResources.asPodResources()) {
                if (pod.getName().equals(request.getPodName())
                        && pod.getNamespace().equals(request.getPodNamespace())) {
                    response.onNext(GetPodResourcesResponse.newBuilder()
                            .setPodResources(pod)
                            .build());
                    response.onCompleted();
                    return;
                }
            }
            response.onError(Status.NOT_FOUND
                    .withDescription("pod " + request.getPodNamespace() + "/" + request.getPodName() + " not found")
                    .asException());
        }
    }
}
