package io.omai.agent.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.omai.agent.config.ByteQuantity;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.MonotonicClock;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.agent.quota.shm.UsageSnapshot;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** Prints a decoded view of allocation files: one directory, or every allocation under a state directory. */
@Command(
        name = "inspect",
        mixinStandardHelpOptions = true,
        description = "Decode allocation control and usage files (an allocation directory, or a directory of them).")
final class InspectCommand implements Callable<Integer> {
    @Parameters(arity = "1..*", paramLabel = "PATH", description = "Allocation directories or state directories.")
    List<Path> paths;

    @Option(names = "--json", description = "Print JSON instead of a table.")
    boolean json;

    @Override
    public Integer call() throws IOException {
        List<Path> allocations = new ArrayList<>();
        for (Path path : paths) {
            allocations.addAll(findAllocations(path));
        }
        int failures = 0;
        List<Map<String, Object>> documents = new ArrayList<>();
        for (Path dir : allocations) {
            try (AllocationFiles files = AllocationFiles.openReadOnly(dir)) {
                ControlSnapshot control = files.control().read();
                UsageSnapshot usage = files.usage().read();
                if (json) {
                    documents.add(toJson(dir, control, usage));
                } else {
                    System.out.print(render(control, usage, dir));
                }
            } catch (IOException e) {
                failures++;
                System.err.println("inspect: " + dir + ": " + e.getMessage());
            }
        }
        if (json) {
            System.out.println(new ObjectMapper()
                    .enable(SerializationFeature.INDENT_OUTPUT)
                    .writeValueAsString(documents));
        }
        return failures == 0 ? 0 : 1;
    }

    /** An allocation directory itself, or its direct subdirectories that hold a control file. */
    static List<Path> findAllocations(Path path) throws IOException {
        if (Files.isRegularFile(path.resolve(AllocationFiles.CONTROL))) {
            return List.of(path);
        }
        if (!Files.isDirectory(path)) {
            throw new java.nio.file.NoSuchFileException(
                    path.toString(),
                    null,
                    "not a directory; expected an allocation directory (with control and usage files) or a "
                            + "directory of them");
        }
        List<Path> found = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(path, Files::isDirectory)) {
            for (Path entry : entries) {
                if (Files.isRegularFile(entry.resolve(AllocationFiles.CONTROL))) {
                    found.add(entry);
                }
            }
        }
        found.sort(null);
        return found;
    }

    static String render(ControlSnapshot control, UsageSnapshot usage, Path dir) {
        StringBuilder out = new StringBuilder();
        out.append("allocation ").append(dir).append('\n');
        out.append("  label      ")
                .append(control.label().isEmpty() ? "-" : control.label())
                .append('\n');
        out.append(String.format(
                Locale.ROOT,
                "  abi        v%d, epoch %d, created %s%n",
                control.abiVersion(),
                control.epoch(),
                Instant.ofEpochSecond(0, control.createdNs())));
        out.append("  heartbeat  ").append(heartbeatAge(control.heartbeatNs())).append('\n');
        out.append("  compute    ")
                .append(
                        control.computeEnforced()
                                ? "enforced, grant period " + control.computePeriodUs() / 1000.0 + " ms"
                                : "not enforced")
                .append('\n');
        out.append(String.format(
                Locale.ROOT,
                "  %-3s %-40s %4s %12s %12s %12s %5s %-15s %10s %10s %8s %6s %10s%n",
                "DEV",
                "UUID",
                "HOST",
                "LIMIT",
                "IN USE",
                "PEAK",
                "QUOTA",
                "MODE",
                "GRANT ms",
                "USED ms",
                "LAUNCHES",
                "DENIED",
                "THROTTLED"));
        for (ControlSnapshot.Device d : control.devices()) {
            UsageSnapshot.DeviceTotals t =
                    d.index() < usage.devices().size() ? usage.devices().get(d.index()) : null;
            out.append(String.format(
                    Locale.ROOT,
                    "  %-3d %-40s %4d %12s %12s %12s %5d %-15s %10.1f %10.1f %8d %6d %9.1fs%n",
                    d.index(),
                    d.uuid(),
                    d.hostIndex(),
                    d.memoryUnlimited() ? "unlimited" : ByteQuantity.format(d.memoryLimitBytes()),
                    t == null ? "-" : ByteQuantity.format(t.bytesReserved()),
                    t == null ? "-" : ByteQuantity.format(t.bytesPeak()),
                    d.computeQuotaMilli(),
                    modeName(d),
                    d.tokenGrantNs() / 1e6,
                    t == null ? 0 : t.tokensConsumedNs() / 1e6,
                    t == null ? 0 : t.launches(),
                    t == null ? 0 : t.deniedAllocs(),
                    t == null ? 0 : t.throttledNs() / 1e9));
        }
        out.append(String.format(
                Locale.ROOT,
                "  processes  %d live; %d reclaimed after death (%s released)%n",
                usage.slots().size(),
                usage.reclaimedSlots(),
                ByteQuantity.format(usage.reclaimedBytes())));
        if (!usage.slots().isEmpty()) {
            out.append(String.format(
                    Locale.ROOT,
                    "  %-4s %-8s %-8s %-8s %-14s %12s %8s%n",
                    "SLOT",
                    "PID",
                    "HOSTPID",
                    "STATE",
                    "START(ticks)",
                    "IN USE",
                    "LAUNCHES"));
            for (UsageSnapshot.Slot s : usage.slots()) {
                out.append(String.format(
                        Locale.ROOT,
                        "  %-4d %-8d %-8s %-8s %-14d %12s %8d%n",
                        s.index(),
                        s.pid(),
                        s.hostPid() == 0 ? "?" : Integer.toString(s.hostPid()),
                        slotState(s.state()),
                        s.startTimeTicks(),
                        ByteQuantity.format(s.bytesInUse()),
                        s.devices().stream()
                                .mapToLong(UsageSnapshot.SlotDevice::launches)
                                .sum()));
            }
        }
        return out.toString();
    }

    private static String modeName(ControlSnapshot.Device d) {
        return d.mode() == null
                ? "invalid(" + d.rawMode() + ")"
                : d.mode().name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    static String slotState(int state) {
        return switch (state) {
            case ShmLayout.SLOT_FREE -> "free";
            case ShmLayout.SLOT_CLAIMED -> "claimed";
            case ShmLayout.SLOT_ACTIVE -> "active";
            case ShmLayout.SLOT_RECLAIM -> "reclaim";
            default -> "invalid(" + state + ")";
        };
    }

    private static String heartbeatAge(long heartbeatNs) {
        if (heartbeatNs == 0) {
            return "never (no agent has ticked this allocation yet)";
        }
        double ageSeconds = (MonotonicClock.nanos() - heartbeatNs) / 1e9;
        return String.format(Locale.ROOT, "%.1f s ago", ageSeconds);
    }

    private static Map<String, Object> toJson(Path dir, ControlSnapshot control, UsageSnapshot usage) {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("directory", dir.toString());
        doc.put("control", control);
        doc.put("usage", usage);
        return doc;
    }
}
