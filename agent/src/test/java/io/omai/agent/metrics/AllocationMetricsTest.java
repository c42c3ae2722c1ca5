package io.omai.agent.metrics;

import static io.omai.agent.metrics.MetricsFixtures.GPU_MEMORY;
import static io.omai.agent.metrics.MetricsFixtures.ids;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.HeldDevices;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ShimLikeWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AllocationMetricsTest {
    private static final Duration KEEP = Duration.ofDays(1);
    private static final String[] TRAIN = {"namespace", "team-a", "pod", "train-0", "container", "main"};

    @TempDir
    Path state;

    private final MetricsFixtures.Nanos nanos = new MetricsFixtures.Nanos();
    private AllocationLedger ledger;
    private AgentMetrics metrics;

    @BeforeEach
    void start() throws Exception {
        ledger = MetricsFixtures.ledger(state);
        metrics = new AgentMetrics("node-1", nanos::get);
        metrics.bindAllocations(
                NodeAgentSources.allocations(ledger, (namespace, pod) -> namespace.equals("team-a") ? "tenant-a" : ""));
    }

    @AfterEach
    void stop() {
        metrics.close();
        ledger.close();
    }

    @Test
    void quotasComeFromTheControlFileAndUseFromTheUsageFile() throws Exception {
        Allocation allocation = ledger.allocate(ids(0, 0, 250));
        ledger.reconcile(List.of(new HeldDevices("team-a/train-0/main", allocation.deviceIdStrings())), KEEP);

        Scrape idle = Scrape.of(metrics);
        String[] series = labels(
                TRAIN,
                "tenant",
                "tenant-a",
                "gpu",
                "0",
                "uuid",
                MetricsFixtures.GPUS.get(0).uuid(),
                "node",
                "node-1");
        assertThat(idle.get("omai_allocation_memory_limit_bytes", series)).isEqualTo(GPU_MEMORY / 4);
        assertThat(idle.get("omai_allocation_memory_used_bytes", series)).isZero();
        assertThat(idle.get("omai_allocation_compute_quota_ratio", series)).isEqualTo(0.25);
        assertThat(idle.get("omai_allocation_gpu_time_seconds_total", series)).isZero();
        assertThat(idle.get("omai_allocation_kernel_launches_total", series)).isZero();
        assertThat(idle.get("omai_allocation_memory_peak_bytes", series)).isZero();
        assertThat(idle.get("omai_allocation_throttled_seconds_total", series)).isZero();
        assertThat(idle.get("omai_allocation_denied_allocations_total", series)).isZero();
        assertThat(idle.get("omai_node_tenants", "tenant", "tenant-a")).isEqualTo(1);

        Path usage = ledger.directory(allocation).resolve(AllocationFiles.USAGE);
        try (ShimLikeWriter shim = new ShimLikeWriter(usage)) {
            int slot = shim.claim(4242, 17);
            shim.allocate(slot, 0, 3L << 30);
            shim.launched(slot, 0, 40, 500_000_000L, 1_500_000_000L);
        }
        MetricsFixtures.denyAllocations(usage, 0, 3);
        nanos.advanceSeconds(2);

        Scrape busy = Scrape.of(metrics);
        assertThat(busy.get("omai_allocation_memory_used_bytes", series)).isEqualTo(3L << 30);
        assertThat(busy.get("omai_allocation_throttled_seconds_total", series)).isEqualTo(1.5);
        assertThat(busy.get("omai_allocation_denied_allocations_total", series)).isEqualTo(3);
        assertThat(busy.get("omai_allocation_gpu_time_seconds_total", series))
                .as("0.5 s of GPU time: rate() over 2 s gives the 0.25 achieved")
                .isCloseTo(0.5, within(1e-9));
        assertThat(busy.get("omai_allocation_kernel_launches_total", series)).isEqualTo(40);
        assertThat(busy.get("omai_allocation_memory_peak_bytes", series)).isEqualTo(3L << 30);
    }

    @Test
    void countersNeverGoBackwardsNorJumpWhateverAForgedUsageFileSays() throws Exception {
        Allocation allocation = ledger.allocate(ids(1, 0, 500));
        ledger.reconcile(List.of(new HeldDevices("team-a/infer-0/srv", allocation.deviceIdStrings())), KEEP);
        Path usage = ledger.directory(allocation).resolve(AllocationFiles.USAGE);
        String[] series = {"pod", "infer-0", "gpu", "1"};
        Scrape.of(metrics);
        try (ShimLikeWriter shim = new ShimLikeWriter(usage)) {
            int slot = shim.claim(7, 1);
            shim.launched(slot, 0, 10, 400_000_000L, 0);
        }
        nanos.advanceSeconds(1);
        assertThat(Scrape.of(metrics).get("omai_allocation_gpu_time_seconds_total", series))
                .isCloseTo(0.4, within(1e-9));

        // the container zeroes its totals: the counters stay where they were
        MetricsFixtures.forgeTotal(usage, 0, "tokens_consumed_ns", 0);
        MetricsFixtures.forgeTotal(usage, 0, "launches", 0);
        nanos.advanceSeconds(1);
        Scrape dropped = Scrape.of(metrics);
        assertThat(dropped.get("omai_allocation_gpu_time_seconds_total", series))
                .isCloseTo(0.4, within(1e-9));
        assertThat(dropped.get("omai_allocation_kernel_launches_total", series)).isEqualTo(10);

        // from the new base, real work counts again
        MetricsFixtures.forgeTotal(usage, 0, "tokens_consumed_ns", 300_000_000L);
        nanos.advanceSeconds(1);
        assertThat(Scrape.of(metrics).get("omai_allocation_gpu_time_seconds_total", series))
                .isCloseTo(0.7, within(1e-9));

        // an absurd jump is cut to one GPU-second per second (plus a second of slack), not 2^63 ns
        MetricsFixtures.forgeTotal(usage, 0, "tokens_consumed_ns", Long.MAX_VALUE);
        MetricsFixtures.forgeTotal(usage, 0, "bytes_peak", Long.MAX_VALUE);
        MetricsFixtures.forgeTotal(usage, 0, "bytes_reserved", -5);
        nanos.advanceSeconds(1);
        Scrape forged = Scrape.of(metrics);
        assertThat(forged.get("omai_allocation_gpu_time_seconds_total", series)).isCloseTo(2.7, within(1e-9));
        assertThat(forged.get("omai_allocation_memory_peak_bytes", series))
                .as("clamped to the quota")
                .isEqualTo(GPU_MEMORY / 2);
        assertThat(forged.get("omai_allocation_memory_used_bytes", series)).isZero();
    }

    @Test
    void theHeartbeatAgeIsTheTimeSinceTheAgentsLastHeartbeat() throws Exception {
        Allocation allocation = ledger.allocate(ids(0, 0, 100));
        ledger.reconcile(List.of(new HeldDevices("team-a/hb-0/main", allocation.deviceIdStrings())), KEEP);
        try (AllocationFiles files = AllocationFiles.open(ledger.directory(allocation))) {
            files.control().heartbeat(io.omai.agent.quota.shm.MonotonicClock.nanos() - 5_000_000_000L);
        }
        assertThat(Scrape.of(metrics).get("omai_heartbeat_age_seconds", "pod", "hb-0"))
                .isBetween(5.0, 60.0);
    }

    @Test
    void seriesOfReleasedAllocationsAreRemoved() throws Exception {
        Allocation train = ledger.allocate(ids(0, 0, 250));
        Allocation other = ledger.allocate(ids(0, 250, 100));
        ledger.reconcile(
                List.of(
                        new HeldDevices("team-a/train-0/main", train.deviceIdStrings()),
                        new HeldDevices("team-b/web-1/app", other.deviceIdStrings())),
                KEEP);
        Scrape both = Scrape.of(metrics);
        assertThat(both.count("omai_allocation_memory_limit_bytes")).isEqualTo(2);
        assertThat(both.value("omai_allocation_memory_limit_bytes", "pod", "web-1", "tenant", ""))
                .isPresent();

        ledger.reconcile(List.of(new HeldDevices("team-b/web-1/app", other.deviceIdStrings())), Duration.ZERO);

        Scrape after = Scrape.of(metrics);
        assertThat(after.anySampleLabelled("pod", "train-0"))
                .as("train-0's series are gone:\n%s", after.text)
                .isFalse();
        assertThat(after.value("omai_node_tenants", "tenant", "tenant-a"))
                .as("no allocation of tenant-a left")
                .isEmpty();
        assertThat(after.get("omai_allocation_memory_limit_bytes", "pod", "web-1"))
                .isEqualTo(GPU_MEMORY / 10);
        assertThat(after.count("omai_allocation_memory_limit_bytes")).isEqualTo(1);
    }

    @Test
    void anAllocationNotYetNamedByPodResourcesIsLabelledWithItsId() throws Exception {
        Allocation first = ledger.allocate(ids(0, 0, 100));
        Allocation second = ledger.allocate(ids(0, 100, 100));

        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.get(
                        "omai_allocation_compute_quota_ratio",
                        "pod",
                        first.id(),
                        "namespace",
                        "",
                        "container",
                        "",
                        "tenant",
                        ""))
                .isEqualTo(0.1);
        assertThat(scrape.get("omai_allocation_compute_quota_ratio", "pod", second.id()))
                .isEqualTo(0.1);

        ledger.reconcile(
                List.of(
                        new HeldDevices("team-a/train-0/main", first.deviceIdStrings()),
                        new HeldDevices("team-a/train-1/main", second.deviceIdStrings())),
                KEEP);
        Scrape named = Scrape.of(metrics);
        assertThat(named.anySampleLabelled("pod", first.id()))
                .as("the id label gives way to the pod")
                .isFalse();
        assertThat(named.get("omai_allocation_compute_quota_ratio", "pod", "train-1"))
                .isEqualTo(0.1);
        assertThat(named.get("omai_node_tenants", "tenant", "tenant-a")).isEqualTo(2);
    }

    @Test
    void wholeGpuAllocationsHaveOneSeriesPerGpu() throws Exception {
        List<String> both = new java.util.ArrayList<>(ids(0, 0, 1000));
        both.addAll(ids(1, 0, 1000));
        Allocation allocation = ledger.allocate(both);
        ledger.reconcile(List.of(new HeldDevices("team-a/train-0/main", allocation.deviceIdStrings())), KEEP);

        Scrape scrape = Scrape.of(metrics);
        for (String gpu : List.of("0", "1")) {
            assertThat(scrape.get("omai_allocation_compute_quota_ratio", "pod", "train-0", "gpu", gpu))
                    .isEqualTo(1);
            assertThat(scrape.get("omai_allocation_memory_limit_bytes", "pod", "train-0", "gpu", gpu))
                    .isEqualTo(GPU_MEMORY);
        }
    }

    @Test
    void anAllocationWhoseFilesAreGoneIsSkippedNotFatal() throws Exception {
        Allocation broken = ledger.allocate(ids(0, 0, 100));
        Allocation fine = ledger.allocate(ids(1, 0, 100));
        ledger.reconcile(
                List.of(
                        new HeldDevices("team-a/broken-0/main", broken.deviceIdStrings()),
                        new HeldDevices("team-a/fine-0/main", fine.deviceIdStrings())),
                KEEP);
        AllocationFiles.delete(ledger.directory(broken));

        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.anySampleLabelled("pod", "broken-0")).isFalse();
        assertThat(scrape.get("omai_allocation_compute_quota_ratio", "pod", "fine-0"))
                .isEqualTo(0.1);
        assertThat(scrape.get("omai_node_tenants", "tenant", "tenant-a"))
                .as("both still count for the tenant")
                .isEqualTo(2);
    }

    private static String[] labels(String[] first, String... more) {
        String[] all = java.util.Arrays.copyOf(first, first.length + more.length);
        System.arraycopy(more, 0, all, first.length, more.length);
        return all;
    }
}
