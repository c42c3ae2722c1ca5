package io.omai.agent.metrics;

import static io.omai.agent.metrics.MetricsFixtures.ids;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.HeldDevices;
import io.omai.agent.metrics.contract.DocumentedFamilies;
import io.omai.agent.metrics.contract.ExpositionText;
import io.omai.agent.metrics.contract.Promtool;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.model.PciAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole scrape, with every binder holding series, passes {@code promtool check metrics} (Prometheus' own
 * linter: format, naming conventions, units, counters ending in {@code _total}) and exports exactly the families
 * docs/operations.md documents, each with HELP, its documented type and labels.
 */
class PromtoolCheckTest {
    @TempDir
    Path state;

    @Test
    void theFullScrapePassesPromtoolCheckMetrics() throws Exception {
        String scrape = fullScrape();
        assertThat(Promtool.checkMetrics(scrape))
                .as("promtool check metrics about:\n%s", scrape)
                .isEmpty();
    }

    @Test
    void theScrapeHasExactlyTheFamiliesDocumentedInOperationsMdWithTheirTypeLabelsAndHelp() throws Exception {
        ExpositionText scrape = new ExpositionText(fullScrape());
        List<DocumentedFamilies.Family> documented = DocumentedFamilies.read();
        Set<String> names =
                documented.stream().map(DocumentedFamilies.Family::name).collect(Collectors.toSet());
        assertThat(new TreeSet<>(scrape.families().keySet()))
                .as("families exported but not documented in docs/operations.md")
                .isSubsetOf(names);
        for (DocumentedFamilies.Family family : documented) {
            ExpositionText.Family exported = scrape.families().get(family.name());
            if (exported == null) {
                assertThat(family.always())
                        .as("%s is documented as present %s but missing", family.name(), family.present())
                        .isFalse();
                continue;
            }
            assertThat(exported.help()).as("HELP of %s", family.name()).isNotBlank();
            assertThat(exported.type()).as("TYPE of %s", family.name()).isEqualTo(family.type());
            for (ExpositionText.Sample sample : exported.samples()) {
                Set<String> labels = new TreeSet<>(sample.labels().keySet());
                labels.remove("le");
                labels.remove("quantile");
                assertThat(labels).as("labels of %s", sample).containsExactlyInAnyOrderElementsOf(family.labels());
            }
        }
    }

    private String fullScrape() throws Exception {
        MetricsFixtures.Nanos nanos = new MetricsFixtures.Nanos();
        try (AllocationLedger ledger = MetricsFixtures.ledger(state);
                AgentMetrics metrics = new AgentMetrics("node-1", nanos::get)) {
            Allocation allocation = ledger.allocate(ids(0, 0, 250));
            ledger.allocate(ids(1, 0, 100)); // owner not known yet
            ledger.reconcile(
                    List.of(new HeldDevices("team-a/train-0/main", allocation.deviceIdStrings())), Duration.ofDays(1));
            NvmlGpuReadings nvml = new NvmlGpuReadings(new io.omai.agent.gpu.FakeNvml(MetricsFixtures.GPUS));
            metrics.closeWith(nvml);
            metrics.bindGpus(NodeAgentSources.gpus(
                    ledger,
                    () -> Map.of(),
                    () -> Map.of(MetricsFixtures.GPUS.get(1).uuid(), Map.of(79L, 1L)),
                    nvml));
            metrics.bindJvm();
            metrics.bindLoops(() -> Map.of("compute-control", 0.1));
            metrics.bindReaper(() -> 3, () -> 1L << 20);
            metrics.bindAllocations(NodeAgentSources.allocations(ledger, (namespace, pod) -> "tenant-a"));
            metrics.bindVfs(new VfMetricsSource() {
                @Override
                public InventorySnapshot inventory() {
                    return VfInventories.twoPfs();
                }

                @Override
                public Set<PciAddress> allocatedVfs() {
                    return Set.of(PciAddress.of("0000:3b:00.2"));
                }
            });
            metrics.bindKubelet(new KubeletMetricsSource() {
                @Override
                public long registrations() {
                    return 2;
                }

                @Override
                public long kubeletRestarts() {
                    return 1;
                }
            });
            metrics.controllerTickRecorder().accept(2_000_000);
            metrics.audit().recordViolation(AuditMetrics.Reason.NO_SHIM, "team-b", "rogue-0");
            System.gc(); // a collection, so the GC pause summary has a sample
            metrics.scrape();
            nanos.advanceSeconds(5);
            return metrics.scrape();
        }
    }
}
