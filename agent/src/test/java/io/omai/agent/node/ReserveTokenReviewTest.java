package io.omai.agent.node;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.authentication.TokenReview;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewBuilder;
import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.kubernetes.client.utils.Serialization;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.MetadataUtils;
import io.omai.agent.kube.KubeTokenReviews;
import io.omai.agent.schedapi.CachedCallerReview;
import io.omai.agent.schedapi.ClientPolicy;
import io.omai.agent.schedapi.DeviceHealth;
import io.omai.agent.schedapi.GpuSnapshot;
import io.omai.agent.schedapi.NodeSnapshot;
import io.omai.agent.schedapi.SchedulerApiServer;
import io.omai.agent.schedapi.StaticNodeInventory;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.ContainerRequirement;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.GetNodeStateRequest;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import io.omai.agent.schedapi.v1.ReleaseRequest;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.agent.tenancy.MutableClock;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.placement.AntiAffinityPolicy;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Only the scheduler may Reserve: the scheduler API's Reserve and Release checked against a real TokenReview
 * round trip (fabric8's mock API server answering {@code authentication.k8s.io/v1} TokenReviews), through the
 * same adapter and cache the daemon wires.
 */
class ReserveTokenReviewTest {
    private static final String PATH = "/apis/authentication.k8s.io/v1/tokenreviews";
    private static final String AUDIENCE = "omai-node-agent";
    private static final String EXTENDER = "system:serviceaccount:omai-system:omai-scheduler-extender";
    private static final long GIB = 1L << 30;

    private final MutableClock clock = new MutableClock(Instant.parse("2026-12-06T07:00:00Z"));
    private KubernetesMockServer kube;
    private KubernetesClient client;
    private SchedulerApiServer server;
    private ManagedChannel channel;
    private final List<String> reviewsAsked = new CopyOnWriteArrayList<>();

    @BeforeEach
    void start() {
        kube = new KubernetesMockServer(false);
        kube.init();
        // no retries: a failing API server answers at once (the daemon's client retries, within the call's deadline)
        try (KubernetesClient defaults = kube.createClient()) {
            client = new KubernetesClientBuilder()
                    .withConfig(new ConfigBuilder(defaults.getConfiguration())
                            .withRequestRetryBackoffLimit(0)
                            .build())
                    .build();
        }
        StaticNodeInventory inventory = new StaticNodeInventory(new NodeSnapshot(
                "node-a",
                1,
                List.of(new GpuSnapshot(
                        "GPU-0",
                        0,
                        "H100",
                        80 * GIB,
                        1000,
                        0,
                        0,
                        DeviceHealth.HEALTHY,
                        0,
                        Map.of(),
                        Set.of(),
                        Set.of())),
                List.of()));
        ReservationBook book = new ReservationBook(inventory::snapshot, AntiAffinityPolicy.GPU, clock);
        ClientPolicy policy = new ClientPolicy.Tokens(
                new CachedCallerReview(
                        SchedulerFacing.callerReview(new KubeTokenReviews(client, AUDIENCE)),
                        Duration.ofSeconds(30),
                        16,
                        clock),
                Set.of(EXTENDER, "omai:schedulers"),
                AUDIENCE,
                Set.of());
        String name = InProcessServerBuilder.generateName();
        server = new SchedulerApiServer(InProcessServerBuilder.forName(name), inventory, book, policy).start();
        channel = InProcessChannelBuilder.forName(name).build();
    }

    @AfterEach
    void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.close();
        client.close();
        kube.destroy();
    }

    /** The API server's answers: one valid token per caller, one for another audience, the rest invalid. */
    private void apiServerReviews() {
        kube.expect()
                .post()
                .withPath(PATH)
                .andReply(201, request -> {
                    String body = request.getUtf8Body();
                    reviewsAsked.add(body);
                    TokenReview asked = Serialization.unmarshal(body, TokenReview.class);
                    String token = asked.getSpec().getToken();
                    var status = new TokenReviewBuilder(asked).editOrNewStatus();
                    return switch (token) {
                        case "extender-token" ->
                            status.withAuthenticated(true)
                                    .withAudiences(asked.getSpec().getAudiences())
                                    .withNewUser()
                                    .withUsername(EXTENDER)
                                    .withGroups("system:serviceaccounts")
                                    .endUser()
                                    .endStatus()
                                    .build();
                        case "group-token" ->
                            status.withAuthenticated(true)
                                    .withAudiences(asked.getSpec().getAudiences())
                                    .withNewUser()
                                    .withUsername("system:serviceaccount:kube-system:my-scheduler")
                                    .withGroups("omai:schedulers")
                                    .endUser()
                                    .endStatus()
                                    .build();
                        case "tenant-token" ->
                            status.withAuthenticated(true)
                                    .withAudiences(asked.getSpec().getAudiences())
                                    .withNewUser()
                                    .withUsername("system:serviceaccount:team-a:default")
                                    .withGroups("system:serviceaccounts", "system:serviceaccounts:team-a")
                                    .endUser()
                                    .endStatus()
                                    .build();
                        case "kube-apiserver-token" ->
                            status.withAuthenticated(true)
                                    .withAudiences("https://kubernetes.default.svc")
                                    .withNewUser()
                                    .withUsername(EXTENDER)
                                    .endUser()
                                    .endStatus()
                                    .build();
                        default ->
                            status.withAuthenticated(false)
                                    .withError("invalid bearer token")
                                    .endStatus()
                                    .build();
                    };
                })
                .always();
    }

    private NodeAgentGrpc.NodeAgentBlockingStub as(String token) {
        NodeAgentGrpc.NodeAgentBlockingStub stub = NodeAgentGrpc.newBlockingStub(channel);
        if (token == null) {
            return stub.withDeadlineAfter(20, TimeUnit.SECONDS);
        }
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
        return stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
                .withDeadlineAfter(20, TimeUnit.SECONDS);
    }

    private static ReserveRequest reserve(String pod) {
        return ReserveRequest.newBuilder()
                .setIdempotencyKey("key-" + pod)
                .setPodUid(pod)
                .setTenant("team-a")
                .setLeaseSeconds(60)
                .addContainers(ContainerAssignment.newBuilder()
                        .setName("main")
                        .addGpuUuids("GPU-0")
                        .setMilli(100))
                .build();
    }

    private static Status refusal(Runnable call) {
        try {
            call.run();
        } catch (StatusRuntimeException e) {
            return e.getStatus();
        }
        throw new AssertionError("expected the call to be refused");
    }

    @Test
    void withoutATokenReserveIsUnauthenticatedButReadsStayOpen() {
        apiServerReviews();

        Status status = refusal(() -> as(null).reserve(reserve("pod-1")));

        assertThat(status.getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
        assertThat(status.getDescription())
                .contains("authorization: Bearer <token>")
                .contains(AUDIENCE)
                .contains(EXTENDER);
        assertThat(as(null).getNodeState(GetNodeStateRequest.getDefaultInstance())
                        .getGpusCount())
                .isEqualTo(1);
        assertThat(as(null).fit(FitRequest.newBuilder()
                                .setTenant("team-a")
                                .addContainers(ContainerRequirement.newBuilder()
                                        .setName("m")
                                        .setMilli(100))
                                .build())
                        .getFeasible())
                .isTrue();
        assertThat(kube.getRequestCount()).as("no TokenReview without a token").isZero();
    }

    @Test
    void anInvalidTokenIsUnauthenticated() {
        apiServerReviews();

        Status forged = refusal(() -> as("forged").reserve(reserve("pod-1")));
        Status otherAudience = refusal(() -> as("kube-apiserver-token").reserve(reserve("pod-1")));

        assertThat(forged.getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
        assertThat(forged.getDescription()).contains("invalid bearer token");
        assertThat(otherAudience.getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
        assertThat(otherAudience.getDescription()).contains("audience '" + AUDIENCE + "'");
        assertThat(reviewsAsked)
                .hasSize(2)
                .allSatisfy(body -> assertThat(body)
                        .contains("\"audiences\":[\"" + AUDIENCE + "\"]")
                        .contains("authentication.k8s.io/v1"));
    }

    @Test
    void aTenantsServiceAccountIsDenied() {
        apiServerReviews();

        Status status = refusal(() -> as("tenant-token").reserve(reserve("pod-1")));
        Status release = refusal(() -> as("tenant-token")
                .release(ReleaseRequest.newBuilder().setPodUid("pod-1").build()));

        assertThat(status.getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
        assertThat(status.getDescription())
                .contains("system:serviceaccount:team-a:default")
                .contains(EXTENDER);
        assertThat(release.getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
    }

    @Test
    void theExtendersServiceAccountOrAnAllowedGroupMayReserveAndRelease() {
        apiServerReviews();

        assertThat(as("extender-token")
                        .reserve(reserve("pod-1"))
                        .getReservation()
                        .getPodUid())
                .isEqualTo("pod-1");
        assertThat(as("group-token").reserve(reserve("pod-2")).getReservation().getPodUid())
                .isEqualTo("pod-2");
        assertThat(as("extender-token")
                        .release(ReleaseRequest.newBuilder().setPodUid("pod-1").build())
                        .getReleased()
                        .getPodUid())
                .isEqualTo("pod-1");
    }

    @Test
    void aVerdictIsCachedForItsTtlThenReviewedAgain() {
        apiServerReviews();

        as("extender-token").reserve(reserve("pod-1"));
        as("extender-token").reserve(reserve("pod-2"));
        as("extender-token")
                .release(ReleaseRequest.newBuilder().setPodUid("pod-1").build());
        int afterThreeCalls = kube.getRequestCount();
        clock.advance(Duration.ofSeconds(31));
        as("extender-token")
                .release(ReleaseRequest.newBuilder().setPodUid("pod-2").build());

        assertThat(afterThreeCalls).isEqualTo(1);
        assertThat(kube.getRequestCount()).isEqualTo(2);
    }

    @Test
    void whenTheApiServerFailsReserveIsUnavailableNotAllowed() {
        kube.expect().post().withPath(PATH).andReturn(500, "etcd is on fire").once();
        apiServerReviews();

        Status status = refusal(() -> as("extender-token").reserve(reserve("pod-1")));

        assertThat(status.getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(status.getDescription()).contains("TokenReview failed");
        // a failure is not remembered: the next call reviews again and passes
        assertThat(as("extender-token")
                        .reserve(reserve("pod-1"))
                        .getReservation()
                        .getPodUid())
                .isEqualTo("pod-1");
    }
}
