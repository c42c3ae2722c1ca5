package io.omai.agent.deviceplugin;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.ibvf.alloc.GpuPlacement;
import io.omai.ibvf.model.PciAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Which GPUs the VF plugin pairs a request with: the newest milli-GPU allocation, if it is recent enough. */
class RecentGpuAllocationTest {
    private static final List<GpuDevice> GPUS = FakeNvml.gpus(2, 80L << 30, 1); // GPU 0 on NUMA 0, GPU 1 on NUMA 1
    private static final Instant T0 = Instant.parse("2026-11-29T08:00:00Z");

    @TempDir
    Path state;

    @TempDir
    Path proc;

    private AllocationLedger ledger;
    private Instant now = T0;

    @BeforeEach
    void open() throws Exception {
        ledger = AllocationLedger.open(GPUS, ConfigLoader.defaults().sharing(), state, Clock.fixed(T0, ZoneOffset.UTC));
    }

    @AfterEach
    void close() {
        ledger.close();
    }

    private RecentGpuAllocation pairing(Path nvidiaGpus, boolean inSysfs) {
        Clock clock = new Clock() {
            @Override
            public java.time.ZoneId getZone() {
                return ZoneOffset.UTC;
            }

            @Override
            public Clock withZone(java.time.ZoneId zone) {
                return this;
            }

            @Override
            public Instant instant() {
                return now;
            }
        };
        return new RecentGpuAllocation(ledger, nvidiaGpus, address -> inSysfs, clock, Duration.ofSeconds(2));
    }

    private void allocateOn(int gpu, int milli) throws Exception {
        ledger.allocate(IntStream.range(0, milli)
                .mapToObj(slot -> new MilliGpuId(GPUS.get(gpu).uuid(), slot).id())
                .toList());
    }

    @Test
    void nothingAllocatedMeansNoPairing() {
        assertThat(pairing(proc.resolve("absent"), true).gpusOfContainerBeingAdmitted())
                .isEmpty();
    }

    @Test
    void theNewestAllocationWithinTheWindowGivesItsGpusNumaNode() throws Exception {
        allocateOn(1, 250);
        now = T0.plusMillis(300);

        assertThat(pairing(proc.resolve("absent"), true).gpusOfContainerBeingAdmitted())
                .containsExactly(GpuPlacement.onNumaNode(1));

        now = T0.plusSeconds(3);
        assertThat(pairing(proc.resolve("absent"), true).gpusOfContainerBeingAdmitted())
                .as("older than the window: another pod's, not this container's")
                .isEmpty();
    }

    @Test
    void theNvidiaDriversProcFilesGiveThePciAddressWhenSysfsHasIt() throws Exception {
        Path gpus = proc.resolve("driver/nvidia/gpus");
        Files.createDirectories(gpus.resolve("0000:3C:00.0"));
        Files.writeString(gpus.resolve("0000:3C:00.0/information"), """
                Model: \t\t NVIDIA H100 80GB HBM3
                IRQ:   \t\t 120
                GPU UUID: \t %s
                Bus Location: \t 0000:3c:00.0
                Device Minor: \t 1
                """.formatted(
                        GPUS.get(1).uuid()));
        allocateOn(1, 500);

        assertThat(pairing(gpus, true).gpusOfContainerBeingAdmitted())
                .containsExactly(new GpuPlacement(Optional.of(PciAddress.of("0000:3c:00.0")), OptionalInt.of(1)));
        assertThat(pairing(gpus, false).gpusOfContainerBeingAdmitted())
                .as("an address the VF plugin's sysfs does not show is of no use")
                .containsExactly(GpuPlacement.onNumaNode(1));
    }
}
