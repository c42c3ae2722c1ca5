package io.omai.agent.kube;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.ContainerBuilder;
import io.fabric8.kubernetes.api.model.Event;
import io.fabric8.kubernetes.api.model.NodeBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.tenancy.AdmissionGate;
import io.omai.agent.tenancy.ContainerReservation;
import io.omai.agent.tenancy.GpuWithdrawals;
import io.omai.agent.tenancy.LedgerNodeCapacity;
import io.omai.agent.tenancy.MutableClock;
import io.omai.agent.tenancy.PodInfo;
import io.omai.agent.tenancy.Reservation;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.agent.tenancy.ReservationRequest;
import io.omai.agent.tenancy.TenantIdentity;
import io.omai.placement.AntiAffinityPolicy;
import io.omai.placement.MilliGpu;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Pod identity, reservations, the node annotation and events against fabric8's mock API server (CRUD mode). */
@EnableKubernetesMockClient(crud = true)
class KubeTenancyTest {
    private static final String NODE = "node-a";
    private static final String MILLI_GPU = "omai.io/milli-gpu";
    private static final Duration WAIT = Duration.ofSeconds(10);

    static KubernetesClient client;

    @TempDir
    Path state;

    private final MutableClock clock = new MutableClock(Instant.parse("2026-03-01T10:00:00Z"));
    private final List<String> deleted = new ArrayList<>();
    private KubePodWatch watch;
    private AllocationLedger ledger;
    private ReservationBook book;

    @BeforeEach
    void start() throws Exception {
        ledger = AllocationLedger.open(
                FakeNvml.gpus(2, 80L << 30, 2), ConfigLoader.defaults().sharing(), state, clock);
        GpuWithdrawals withdrawals = new GpuWithdrawals();
        book = new ReservationBook(
                () -> LedgerNodeCapacity.of(NODE, ledger, withdrawals), AntiAffinityPolicy.GPU, clock);
        watch = new KubePodWatch(NODE, MILLI_GPU, new TenantIdentity(TenantIdentity.DEFAULT_LABEL), pod -> {
                    synchronized (deleted) {
                        deleted.add(pod.uid());
                    }
                    book.releaseByPod(pod.uid());
                })
                .start(client, false);
    }

    @AfterEach
    void stop() {
        watch.close();
        ledger.close();
        client.pods().inAnyNamespace().delete();
    }

    private static Pod pod(String namespace, String name, String node, Map<String, String> labels, int milli) {
        return client.pods()
                .inNamespace(namespace)
                .resource(new PodBuilder()
                        .withNewMetadata()
                        .withNamespace(namespace)
                        .withName(name)
                        .withLabels(labels)
                        .endMetadata()
                        .withNewSpec()
                        .withNodeName(node)
                        .addToContainers(new ContainerBuilder()
                                .withName("main")
                                .withImage("cuda")
                                .withNewResources()
                                .addToLimits(MILLI_GPU, new Quantity(Integer.toString(milli)))
                                .endResources()
                                .build())
                        .endSpec()
                        .withNewStatus()
                        .withPhase("Pending")
                        .endStatus()
                        .build())
                .create();
    }

    private PodInfo seen(Pod pod) {
        String uid = pod.getMetadata().getUid();
        await().atMost(WAIT).until(() -> watch.byUid(uid).isPresent());
        return watch.byUid(uid).orElseThrow();
    }

    @Test
    void aPodsTenantIsItsLabelElseItsNamespaceAndOnlyThisNodesPodsAreKept() {
        Pod labelled = pod("ns-1", "trainer", NODE, Map.of("omai.io/tenant", "team-x"), 250);
        Pod plain = pod("ns-2", "infer", NODE, Map.of("app", "infer"), 1000);
        Pod elsewhere = pod("ns-1", "elsewhere", "node-b", Map.of(), 100);

        PodInfo x = seen(labelled);
        assertThat(x.tenant()).isEqualTo("team-x");
        assertThat(x.pending()).isTrue();
        assertThat(x.gpuContainers()).containsExactly(new PodInfo.GpuContainer("main", 250));
        assertThat(seen(plain).tenant()).isEqualTo("ns-2");
        await().atMost(WAIT).until(watch::synced);
        assertThat(watch.pods())
                .extracting(PodInfo::name)
                .containsExactlyInAnyOrder("trainer", "infer")
                .doesNotContain(elsewhere.getMetadata().getName());
    }

    @Test
    void reservationLifecycleCreateRepeatConsumeExpireAndReleaseOnPodDeletion() throws Exception {
        AdmissionGate gate = new AdmissionGate(NODE, ledger, book, watch, new GpuWithdrawals(), Duration.ofSeconds(2));
        String gpu0 = FakeNvml.uuid(0);

        // create, and an idempotent repeat returns the same reservation
        PodInfo first = seen(pod("ns-a", "first", NODE, Map.of("omai.io/tenant", "team-a"), 300));
        ReservationRequest request = request("k1", first, gpu0, 300, Duration.ofSeconds(30));
        Reservation made = book.reserve(request);
        assertThat(book.reserve(request)).isEqualTo(made);

        // consume: kubelet admits the pod; the agent hands out exactly the reserved GPU and records the tenant
        List<String> available = available();
        List<String> chosen = gate.preferredAllocation(available, List.of(), 300).stream()
                .map(MilliGpuId::id)
                .toList();
        Allocation allocation = gate.allocate(chosen);
        assertThat(allocation.gpuUuids()).containsExactly(gpu0);
        assertThat(allocation.claim().podUid()).isEqualTo(first.uid());
        assertThat(allocation.claim().tenant()).isEqualTo("team-a");
        assertThat(book.outstanding()).isEmpty();

        // expire: a lease that ends unconsumed stops counting and is swept
        PodInfo late = seen(pod("ns-a", "late", NODE, Map.of("omai.io/tenant", "team-a"), 200));
        book.reserve(request("k2", late, gpu0, 200, Duration.ofSeconds(5)));
        clock.advance(Duration.ofSeconds(6));
        assertThat(book.outstanding()).isEmpty();
        assertThat(book.expireDue()).extracting(Reservation::idempotencyKey).containsExactly("k2");

        // release on deletion: the informer's delete drops the pod's reservation
        PodInfo gone = seen(pod("ns-b", "gone", NODE, Map.of(), 500));
        book.reserve(request("k3", gone, FakeNvml.uuid(1), 500, Duration.ofMinutes(10)));
        client.pods().inNamespace("ns-b").withName("gone").delete();
        await().atMost(WAIT).until(() -> book.forPod(gone.uid()).isEmpty());
        synchronized (deleted) {
            assertThat(deleted).contains(gone.uid());
        }
    }

    @Test
    void theNodesTenantsArePublishedAsAnAnnotation() {
        client.nodes()
                .resource(new NodeBuilder()
                        .withNewMetadata()
                        .withName(NODE)
                        .endMetadata()
                        .build())
                .create();
        var tenants = new java.util.concurrent.atomic.AtomicReference<Set<String>>(Set.of("team-b", "team-a"));
        NodeTenantsPublisher publisher = new NodeTenantsPublisher(client, NODE, tenants::get);
        publisher.publishIfChanged();
        assertThat(client.nodes().withName(NODE).get().getMetadata().getAnnotations())
                .containsEntry(NodeTenantsPublisher.ANNOTATION, "team-a,team-b");

        tenants.set(Set.of());
        publisher.publishIfChanged();
        assertThat(client.nodes().withName(NODE).get().getMetadata().getAnnotations())
                .containsEntry(NodeTenantsPublisher.ANNOTATION, "");
        publisher.close();
    }

    @Test
    void refusalsAndFindingsBecomeWarningEventsOnThePodOrTheNode() {
        try (KubeEvents events = new KubeEvents(client, NODE, Clock.systemUTC())) {
            events.onPod("ns-a", "trainer", "uid-1", "GpuAllocationRefused", "tenant 'a' may not share GPU-1");
            events.onNode("GpuWithdrawn", "GPU-1 is advertised as nvidia.com/gpu");
            await().atMost(WAIT).untilAsserted(() -> {
                List<Event> podEvents =
                        client.v1().events().inNamespace("ns-a").list().getItems();
                assertThat(podEvents).singleElement().satisfies(e -> {
                    assertThat(e.getType()).isEqualTo("Warning");
                    assertThat(e.getReason()).isEqualTo("GpuAllocationRefused");
                    assertThat(e.getInvolvedObject().getName()).isEqualTo("trainer");
                    assertThat(e.getSource().getHost()).isEqualTo(NODE);
                });
                assertThat(client.v1().events().inNamespace("default").list().getItems())
                        .anySatisfy(
                                e -> assertThat(e.getInvolvedObject().getKind()).isEqualTo("Node"));
            });
        }
    }

    private static ReservationRequest request(String key, PodInfo pod, String gpu, int milli, Duration lease) {
        return new ReservationRequest(
                key,
                pod.uid(),
                pod.tenant(),
                List.of(new ContainerReservation("main", List.of(gpu), milli, 0, List.of())),
                lease);
    }

    private List<String> available() {
        Set<String> held = new java.util.HashSet<>();
        ledger.allocations().forEach(a -> held.addAll(a.deviceIdStrings()));
        List<String> ids = new ArrayList<>();
        for (var gpu : ledger.gpus()) {
            for (int slot = 0; slot < MilliGpu.PER_GPU; slot++) {
                String id = new MilliGpuId(gpu.uuid(), slot).id();
                if (!held.contains(id)) {
                    ids.add(id);
                }
            }
        }
        return ids;
    }
}
