package io.omai.agent.metrics;

import static io.omai.agent.metrics.MetricsFixtures.ids;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.HeldDevices;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.model.PciAddress;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole scrape, with every binder holding series, passes {@code promtool check metrics} (Prometheus' own
 * linter: format, naming conventions, units, counters ending in {@code _total}) and exports exactly the metric
 * names docs/operations.md lists.
 */
class PromtoolCheckTest {
    @TempDir
    Path state;

    @Test
    void theFullScrapePassesPromtoolCheckMetrics() throws Exception {
        Optional<Path> promtool = onPath("promtool");
        assumeTrue(
                promtool.isPresent(),
                "promtool is not on the PATH, so the scrape was NOT linted: install "
                        + "Debian's 'prometheus' package (apt-get install -y --no-install-recommends prometheus), as "
                        + ".ci/run does");
        String scrape = fullScrape();

        Process check = new ProcessBuilder(promtool.get().toString(), "check", "metrics")
                .redirectErrorStream(true)
                .start();
        try (var stdin = check.getOutputStream()) {
            stdin.write(scrape.getBytes(StandardCharsets.UTF_8));
        }
        String output = new String(check.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(check.waitFor(60, TimeUnit.SECONDS)).as("promtool finished").isTrue();
        assertThat(check.exitValue())
                .as("promtool check metrics said:\n%s\nabout:\n%s", output, scrape)
                .isZero();
        assertThat(output.strip()).as("promtool findings").isEmpty();
    }

    @Test
    void theScrapeHasExactlyTheMetricsDocumentedInOperationsMd() throws Exception {
        String scrape = fullScrape();
        Set<String> exported = new TreeSet<>();
        Matcher type = Pattern.compile("(?m)^# TYPE (\\S+) ").matcher(scrape);
        while (type.find()) {
            exported.add(type.group(1));
        }
        // Micrometer adds a _max gauge to every timer; docs/operations.md mentions it without naming each one.
        exported.removeIf(name -> name.endsWith("_seconds_max"));
        assertThat(exported).isEqualTo(documentedMetrics());
    }

    private String fullScrape() throws Exception {
        MetricsFixtures.Nanos nanos = new MetricsFixtures.Nanos();
        try (AllocationLedger ledger = MetricsFixtures.ledger(state);
                AgentMetrics metrics = new AgentMetrics("node-1", nanos::get)) {
            Allocation allocation = ledger.allocate(ids(0, 0, 250));
            ledger.allocate(ids(1, 0, 100)); // owner not known yet
            ledger.reconcile(
                    List.of(new HeldDevices("team-a/train-0/main", allocation.deviceIdStrings())), Duration.ofDays(1));
            NvmlGpuReadings nvml = new NvmlGpuReadings(
                    new io.omai.agent.gpu.FakeNvml(MetricsFixtures.GPUS),
                    NvmlGpuReadings.UtilizationRates.NOT_SUPPORTED);
            metrics.bindGpus(NodeAgentSources.gpus(ledger, () -> Map.of(), nvml));
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
            metrics.scrape();
            nanos.advanceSeconds(5);
            return metrics.scrape();
        }
    }

    private static Set<String> documentedMetrics() throws IOException {
        Path doc = repositoryRoot().resolve("docs/operations.md");
        Matcher section =
                Pattern.compile("(?ms)^## Metrics\\s*$(.*?)(?=^## |\\z)").matcher(Files.readString(doc));
        assertThat(section.find()).as("%s has a '## Metrics' section", doc).isTrue();
        Set<String> names = new TreeSet<>();
        Matcher name = Pattern.compile("\\bomai_[a-z0-9_]+").matcher(section.group(1));
        while (name.find()) {
            names.add(name.group());
        }
        return names;
    }

    private static Path repositoryRoot() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null && !Files.isRegularFile(dir.resolve("mvnw"))) {
            dir = dir.getParent();
        }
        if (dir == null) {
            throw new IllegalStateException("no mvnw above " + Path.of("").toAbsolutePath());
        }
        return dir;
    }

    private static Optional<Path> onPath(String command) {
        String path = System.getenv("PATH");
        if (path == null) {
            return Optional.empty();
        }
        return Arrays.stream(path.split(File.pathSeparator))
                .filter(dir -> !dir.isEmpty())
                .map(dir -> Path.of(dir, command))
                .filter(Files::isExecutable)
                .findFirst();
    }
}
