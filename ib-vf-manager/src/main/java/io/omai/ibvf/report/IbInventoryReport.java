package io.omai.ibvf.report;

import io.omai.ibvf.discovery.SysfsDiscovery;
import io.omai.ibvf.error.IbVfException;
import io.omai.ibvf.health.DesiredVfState;
import io.omai.ibvf.health.VfHealthEvaluator;
import io.omai.ibvf.inventory.IbVfListener;
import io.omai.ibvf.inventory.IbVfMonitor;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.kernel.FileSysfs;
import io.omai.ibvf.kernel.Sysfs;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Entry point for the agent's inventory CLI subcommand (no {@code main} here): discovers the node's IB SR-IOV state
 * and renders it. Read-only: it never writes to sysfs.
 */
public final class IbInventoryReport {

    private IbInventoryReport() {}

    /**
     * Discovers from the sysfs tree at {@code sysfsRoot} (normally {@code /sys}) and renders it. Without a manager
     * there is no assigned GUID to compare with, so health accepts any valid GUID.
     */
    public static String render(Path sysfsRoot, ReportFormat format) {
        Sysfs sysfs = new FileSysfs(sysfsRoot);
        IbVfMonitor oneShot = new IbVfMonitor(
                new SysfsDiscovery(sysfs), new VfHealthEvaluator(sysfs), (pf, vf) -> DesiredVfState.anyValidGuid());
        List<IbVfException> failures = new ArrayList<>();
        oneShot.subscribe(new IbVfListener() {
            @Override
            public void onInventoryChanged(InventorySnapshot snapshot) {}

            @Override
            public void onDiscoveryFailed(IbVfException failure) {
                failures.add(failure);
            }
        });
        InventorySnapshot snapshot = oneShot.poll();
        if (!failures.isEmpty()) {
            throw failures.getFirst(); // a report from a half-read tree would mislead the operator
        }
        return render(snapshot, sysfs, format);
    }

    /** Renders a snapshot taken by a running manager's monitor (health judged against assigned GUIDs). */
    public static String render(InventorySnapshot snapshot, Sysfs sysfs, ReportFormat format) {
        InventoryReport report = InventoryReport.of(snapshot, sysfs);
        return switch (format) {
            case TEXT -> new TextReportRenderer().render(report);
            case JSON -> new JsonReportRenderer().render(report);
        };
    }
}
