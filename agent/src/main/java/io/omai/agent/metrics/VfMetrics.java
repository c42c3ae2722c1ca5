package io.omai.agent.metrics;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.omai.ibvf.inventory.InventorySnapshot;
import io.omai.ibvf.inventory.PfStatus;
import io.omai.ibvf.inventory.VfStatus;
import io.omai.ibvf.model.PciAddress;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Per VF: allocated and healthy, labelled {@code pf}, {@code vf} (PCI addresses) and {@code link_layer}; per PF:
 * whether its link layer enforces per-VF rate limits. VFs and PFs that disappear (a lowered VF count, a removed
 * card) lose their series.
 */
final class VfMetrics implements ScrapeRefresh {
    static final String ALLOCATED = "omai.vf.allocated";
    static final String HEALTHY = "omai.vf.healthy";
    static final String QOS_RATE_LIMIT = "omai.vf.qos.rate.limit.supported";

    private final VfMetricsSource source;
    private final SeriesSet<VfKey, VfReading> vfs;
    private final SeriesSet<PfKey, Boolean> pfs;

    private record VfKey(String pf, String vf, String linkLayer) {}

    private record PfKey(String pf, String linkLayer) {}

    private record VfReading(boolean allocated, boolean healthy) {}

    VfMetrics(MeterRegistry registry, VfMetricsSource source) {
        this.source = source;
        this.vfs = new SeriesSet<>(registry, (reg, key, latest) -> {
            Tags tags = Tags.of("pf", key.pf(), "vf", key.vf(), "link_layer", key.linkLayer());
            return List.of(
                    GpuMetrics.gauge(
                            reg,
                            ALLOCATED,
                            null,
                            "1 if the VF is handed out",
                            tags,
                            latest,
                            reading -> reading.allocated() ? 1 : 0),
                    GpuMetrics.gauge(
                            reg,
                            HEALTHY,
                            null,
                            "1 healthy, 0 not advertised",
                            tags,
                            latest,
                            reading -> reading.healthy() ? 1 : 0));
        });
        this.pfs = new SeriesSet<>(
                registry,
                (reg, key, latest) -> List.of(GpuMetrics.gauge(
                        reg,
                        QOS_RATE_LIMIT,
                        null,
                        "1 where the link layer enforces per-VF rate limits (Ethernet/RoCE), 0 on InfiniBand",
                        Tags.of("pf", key.pf(), "link_layer", key.linkLayer()),
                        latest,
                        rate -> rate ? 1 : 0)));
    }

    @Override
    public void refresh() {
        InventorySnapshot inventory = source.inventory();
        Set<PciAddress> allocated = source.allocatedVfs();
        Map<VfKey, VfReading> vfReadings = new LinkedHashMap<>();
        Map<PfKey, Boolean> pfReadings = new LinkedHashMap<>();
        for (PfStatus pf : inventory.pfs()) {
            String pfAddress = pf.pf().address().value();
            String linkLayer = pf.pf().linkLayer().sysfsName();
            pfReadings.put(new PfKey(pfAddress, linkLayer), pf.qos().perVfRateEnforced());
            for (VfStatus vf : pf.vfs()) {
                vfReadings.put(
                        new VfKey(pfAddress, vf.vf().address().value(), linkLayer),
                        new VfReading(
                                allocated.contains(vf.vf().address()),
                                vf.health().isHealthy()));
            }
        }
        vfs.update(vfReadings);
        pfs.update(pfReadings);
    }
}
