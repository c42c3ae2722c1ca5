package io.omai.agent.deviceplugin;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.stub.StreamObserver;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.ListAndWatchResponse;
import io.omai.agent.deviceplugin.v1beta1.RegisterRequest;
import io.omai.agent.deviceplugin.v1beta1.RegistrationGrpc;
import io.omai.agent.gpu.FakeNvml;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The registrar against a minimal kubelet over real unix sockets: each way a kubelet restart shows itself. */
class KubeletRegistrarTest {
    private static final String RESOURCE = "omai.io/milli-gpu";

    @TempDir
    Path dir;

    private final List<RegisterRequest> registrations = new CopyOnWriteArrayList<>();
    private Server kubelet;
    private PluginSocketServer plugin;
    private DeviceListPublisher devices;
    private KubeletRegistrar registrar;
    private ManagedChannel stream;

    /** kubelet's side: records Register calls, then (if asked) opens ListAndWatch to the plugin. */
    private void startKubelet(boolean openStream) throws Exception {
        kubelet = UnixSocketGrpc.startServer(
                dir.resolve("kubelet.sock"), List.of(new RegistrationGrpc.RegistrationImplBase() {
                    @Override
                    public void register(RegisterRequest request, StreamObserver<Empty> response) {
                        registrations.add(request);
                        response.onNext(Empty.getDefaultInstance());
                        response.onCompleted();
                        if (openStream) {
                            Thread.ofVirtual().start(() -> openListAndWatch(request.getEndpoint()));
                        }
                    }
                }));
    }

    private void openListAndWatch(String endpoint) {
        if (stream != null) {
            stream.shutdownNow();
        }
        stream = UnixSocketGrpc.channel(dir.resolve(endpoint));
        DevicePluginGrpc.newStub(stream).listAndWatch(Empty.getDefaultInstance(), new StreamObserver<>() {
            @Override
            public void onNext(ListAndWatchResponse value) {}

            @Override
            public void onError(Throwable t) {}

            @Override
            public void onCompleted() {}
        });
    }

    private void startPlugin() throws Exception {
        devices = new DeviceListPublisher(FakeNvml.gpus(1, 1L << 30, 1), Map.of());
        plugin = new PluginSocketServer(
                dir.resolve("omai-io-milli-gpu.sock"), List.of(new DevicePluginGrpc.DevicePluginImplBase() {
                    @Override
                    public void listAndWatch(Empty request, StreamObserver<ListAndWatchResponse> response) {
                        devices.watch(response);
                    }
                }));
        plugin.ensureListening();
        registrar = new KubeletRegistrar(dir, RESOURCE, plugin, devices::watchers, Duration.ofMillis(200));
        devices.onStreamEnded(registrar::streamEnded);
        registrar.start();
    }

    @AfterEach
    void stop() {
        if (registrar != null) {
            registrar.close();
        }
        if (stream != null) {
            stream.shutdownNow();
        }
        if (plugin != null) {
            plugin.close();
        }
        UnixSocketGrpc.stop(kubelet, 100);
    }

    @Test
    void waitsForKubeletSockThenRegistersWithTheRealOptions() throws Exception {
        startPlugin();
        Thread.sleep(300);
        assertThat(registrations).isEmpty();
        startKubelet(false);
        await().atMost(Duration.ofSeconds(5)).until(() -> registrations.size() == 1);
        RegisterRequest request = registrations.getFirst();
        assertThat(request.getVersion()).isEqualTo("v1beta1");
        assertThat(request.getEndpoint()).isEqualTo("omai-io-milli-gpu.sock");
        assertThat(request.getResourceName()).isEqualTo(RESOURCE);
        assertThat(request.getOptions().getGetPreferredAllocationAvailable()).isTrue();
    }

    @Test
    void aDeletedPluginSocketIsReboundAndRegisteredAgain() throws Exception {
        startKubelet(true);
        startPlugin();
        await().atMost(Duration.ofSeconds(5)).until(() -> registrations.size() == 1 && devices.watchers() == 1);
        Files.delete(dir.resolve("omai-io-milli-gpu.sock"));
        await().atMost(Duration.ofSeconds(5)).until(() -> registrations.size() == 2);
        assertThat(Files.exists(dir.resolve("omai-io-milli-gpu.sock"))).isTrue();
        assertThat(plugin.starts()).isEqualTo(2);
        await().atMost(Duration.ofSeconds(5)).until(() -> devices.watchers() == 1); // kubelet could dial it again
    }

    @Test
    void aNewKubeletSockIsANewRegistration() throws Exception {
        startKubelet(true);
        startPlugin();
        await().atMost(Duration.ofSeconds(5)).until(() -> registrations.size() == 1);
        UnixSocketGrpc.stop(kubelet, 100);
        startKubelet(true); // binds a new kubelet.sock (new inode)
        await().atMost(Duration.ofSeconds(5)).until(() -> registrations.size() == 2);
    }

    @Test
    void aLostStreamWithNoNewOneLeadsToRegisteringAgain() throws Exception {
        startKubelet(true);
        startPlugin();
        await().atMost(Duration.ofSeconds(5)).until(() -> registrations.size() == 1 && devices.watchers() == 1);
        Thread.sleep(1_200); // past the settle time after a registration
        stream.shutdownNow(); // kubelet drops the stream but its socket stays
        await().atMost(Duration.ofSeconds(10)).until(() -> registrations.size() == 2);
        // The new registration brings a new stream, and that one ending is not seen as lost.
        await().atMost(Duration.ofSeconds(5)).until(() -> devices.watchers() == 1);
        Thread.sleep(2_500);
        assertThat(registrations).hasSize(2);
    }
}
