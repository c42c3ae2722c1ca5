package io.omai.agent.cli;

import io.omai.agent.config.ByteQuantity;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.ShmLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** Operator commands that create or change an allocation's control and usage files by hand. */
final class AllocationCommands {
    private AllocationCommands() {}

    /** Options shared by {@code create} and {@code set}. */
    static final class SpecOptions {
        @Option(
                names = "--device",
                required = true,
                paramLabel = "SPEC",
                description = "A GPU of the allocation: uuid=GPU-...,memory=4GiB|unlimited,quota=300,"
                        + "mode=hard-cap|work-conserving[,index=N]. Repeat for several GPUs.")
        List<String> devices = new ArrayList<>();

        @Option(names = "--label", paramLabel = "NS/POD/CONTAINER", description = "Who the allocation is for.")
        String label = "";

        @Option(names = "--no-compute", description = "Enforce memory only; launches spend no tokens.")
        boolean noCompute;

        @Option(
                names = "--period-us",
                paramLabel = "US",
                description = "Compute grant period (default ${DEFAULT-VALUE}).")
        int periodUs = 100_000;

        AllocationSpec toSpec() {
            List<DeviceQuota> quotas = new ArrayList<>();
            for (String device : devices) {
                quotas.add(parseDevice(device, quotas.size()));
            }
            return new AllocationSpec(label, quotas, !noCompute, periodUs);
        }
    }

    static DeviceQuota parseDevice(String text, int position) {
        Map<String, String> fields = new HashMap<>();
        for (String part : text.split(",", -1)) {
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("--device '" + text + "': '" + part
                        + "' is not key=value; expected uuid=...,memory=...,quota=...,mode=...");
            }
            String key = part.substring(0, eq).trim().toLowerCase(Locale.ROOT);
            if (!List.of("uuid", "memory", "quota", "mode", "index").contains(key)) {
                throw new IllegalArgumentException("--device '" + text + "': unknown key '" + key
                        + "'; expected uuid, memory, quota, mode or index");
            }
            fields.put(key, part.substring(eq + 1).trim());
        }
        String memory = fields.getOrDefault("memory", "unlimited");
        long limit = memory.equalsIgnoreCase("unlimited") ? ShmLayout.MEMORY_UNLIMITED : ByteQuantity.parse(memory);
        int quota = parseInt(text, "quota", fields.getOrDefault("quota", "1000"));
        int index = parseInt(text, "index", fields.getOrDefault("index", Integer.toString(position)));
        String modeText = fields.getOrDefault("mode", "hard-cap").toLowerCase(Locale.ROOT);
        ComputeMode mode = switch (modeText) {
            case "hard-cap", "hard" -> ComputeMode.HARD_CAP;
            case "work-conserving", "borrow" -> ComputeMode.WORK_CONSERVING;
            default ->
                throw new IllegalArgumentException("--device '" + text + "': mode '" + modeText
                        + "' is unknown; expected hard-cap or work-conserving");
        };
        return new DeviceQuota(fields.get("uuid"), index, limit, quota, mode);
    }

    private static int parseInt(String text, String key, String value) {
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(
                    "--device '" + text + "': " + key + " '" + value + "' is not a whole number");
        }
    }

    @Command(
            name = "create",
            mixinStandardHelpOptions = true,
            description = "Create an allocation directory (control + usage files) with the given limits.")
    static final class Create implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "DIR", description = "Allocation directory to create.")
        Path directory;

        @picocli.CommandLine.Mixin
        SpecOptions options;

        @Override
        public Integer call() throws Exception {
            try (AllocationFiles files = AllocationFiles.create(directory, options.toSpec())) {
                System.out.print(InspectCommand.render(
                        files.control().read(), files.usage().read(), directory));
            }
            return 0;
        }
    }

    /**
     * {@code omai set} writes the control file only as its one writer: it takes the allocation's writer lock, which
     * a running agent holds for every allocation it serves, and refuses while another process holds it (the
     * seqlock has room for one writer only).
     */
    @Command(
            name = "set",
            mixinStandardHelpOptions = true,
            description = "Change the limits of an existing allocation live (the shim applies them from its next "
                    + "call). Refused while a running agent owns the allocation.")
    static final class Set implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "DIR", description = "Existing allocation directory.")
        Path directory;

        @picocli.CommandLine.Mixin
        SpecOptions options;

        @Override
        public Integer call() throws Exception {
            try (AllocationFiles files = AllocationFiles.openAsWriter(directory)) {
                AllocationSpec spec = options.toSpec();
                if (spec.devices().size() != files.usage().deviceCount()) {
                    throw new IllegalArgumentException("the allocation in " + directory + " has "
                            + files.usage().deviceCount() + " device(s); --device was given "
                            + spec.devices().size() + " time(s)");
                }
                files.control().update(spec);
                System.out.print(InspectCommand.render(
                        files.control().read(), files.usage().read(), directory));
            }
            return 0;
        }
    }
}
