package io.omai.agent.cli;

import io.omai.ibvf.report.IbInventoryReport;
import io.omai.ibvf.report.ReportFormat;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Prints what the InfiniBand VF manager sees on this node: PFs, VFs, RDMA devices, GUIDs, health and QoS. */
@Command(
        name = "ib",
        mixinStandardHelpOptions = true,
        description = "Show InfiniBand SR-IOV PFs and VFs as the agent sees them (read-only).")
final class IbCommand implements Callable<Integer> {
    @Option(
            names = "--sysfs-root",
            paramLabel = "DIR",
            description = "Root of the sysfs tree (default ${DEFAULT-VALUE}).")
    Path sysfsRoot = Path.of("/sys");

    @Option(names = "--format", paramLabel = "text|json", description = "Output format (default ${DEFAULT-VALUE}).")
    String format = "text";

    @Override
    public Integer call() {
        System.out.print(IbInventoryReport.render(sysfsRoot, ReportFormat.parse(format)));
        return 0;
    }
}
