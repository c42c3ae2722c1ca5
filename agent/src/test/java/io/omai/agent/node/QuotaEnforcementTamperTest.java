package io.omai.agent.node;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationClaim;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.quota.audit.AuditFinding;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.ControlRegion;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.ShimLikeWriter;
import io.omai.agent.quota.shm.ShmLayout;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What {@code audit.onTamper} does to the allocation whose usage file was tampered with, and to no other. */
class QuotaEnforcementTamperTest {
    private static final long GIB = 1L << 30;

    @TempDir
    Path state;

    private final List<GpuDevice> gpus = FakeNvml.gpus(2, 16 * GIB, 2);
    private final List<AuditFinding> findings = new ArrayList<>();
    private final List<Integer> killed = new ArrayList<>();
    private AllocationLedger ledger;
    private Allocation attacker;
    private Allocation neighbour;
    private QuotaEnforcement quotas;

    @BeforeEach
    void open() throws Exception {
        ledger = AllocationLedger.open(gpus, ConfigLoader.defaults().sharing(), state, Clock.systemUTC());
        attacker = ledger.allocate(ids(0), new AllocationClaim("uid-a", "team-a", "attacker", "main", "team-a", 0));
        neighbour = ledger.allocate(ids(1), new AllocationClaim("uid-b", "team-b", "victim", "main", "team-b", 0));
    }

    private static List<String> ids(int gpu) {
        return IntStream.range(0, 500)
                .mapToObj(s -> new MilliGpuId(FakeNvml.uuid(gpu), s).id())
                .toList();
    }

    private void enforce(AgentConfig.TamperAction action) {
        quotas = new QuotaEnforcement(ledger, new FakeNvml(gpus), 100_000_000L, action, pid -> killed.add(pid));
        quotas.reportTo(findings::add);
    }

    @AfterEach
    void close() {
        if (quotas != null) {
            quotas.close();
        }
        ledger.close();
    }

    private ControlSnapshot control(Allocation allocation) throws IOException {
        // the control file alone: the usage file may be the tampered one
        try (ControlRegion control =
                ControlRegion.openReadOnly(ledger.directory(allocation).resolve(AllocationFiles.CONTROL))) {
            return control.read();
        }
    }

    private Path usage(Allocation allocation) {
        return ledger.directory(allocation).resolve(AllocationFiles.USAGE);
    }

    private static void putLong(Path file, long at, long value) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value), at);
        }
    }

    @Test
    void freezeStopsMemoryAndGrantsUntilTheMarkerIsDeletedAndLeavesTheNeighbourAlone() throws Exception {
        enforce(AgentConfig.TamperAction.FREEZE);
        quotas.computeLoop().tick();
        putLong(usage(attacker), 0, 0L); // zeroed magic

        quotas.reaper().reapOnce();

        assertThat(findings).singleElement().satisfies(f -> {
            assertThat(f.reason()).isEqualTo(AuditFinding.Reason.USAGE_TAMPERED);
            assertThat(f.namespace()).isEqualTo("team-a");
            assertThat(f.pod()).isEqualTo("attacker");
            assertThat(f.podUid()).isEqualTo("uid-a");
            assertThat(f.allocationId()).isEqualTo(attacker.id());
            assertThat(f.detail()).contains("magic is 0x0").contains("frozen");
        });
        assertThat(quotas.frozen()).containsExactly(attacker.id());
        ControlSnapshot frozen = control(attacker);
        assertThat(frozen.devices()).allSatisfy(d -> {
            assertThat(d.memoryLimitBytes())
                    .as("the shim's reserve can never pass 0")
                    .isZero();
            assertThat(d.mode()).isEqualTo(ComputeMode.HARD_CAP);
        });
        assertThat(frozen.computeEnforced()).isTrue();
        assertThat(control(neighbour).devices().getFirst().memoryLimitBytes()).isEqualTo(8 * GIB);

        long grant = frozen.devices().getFirst().tokenGrantNs();
        Thread.sleep(5);
        quotas.computeLoop().tick();
        quotas.computeLoop().tick();
        ControlSnapshot after = control(attacker);
        assertThat(after.devices().getFirst().tokenGrantNs())
                .as("no more GPU time")
                .isEqualTo(grant);
        assertThat(after.heartbeatNs())
                .as("still heartbeaten: no fall-back to its own quota")
                .isGreaterThan(frozen.heartbeatNs());

        putLong(usage(attacker), 0, ShmLayout.USAGE_MAGIC);
        quotas.reaper().reapOnce();
        assertThat(control(attacker).devices().getFirst().memoryLimitBytes())
                .as("frozen until the marker goes")
                .isZero();
        Files.delete(ledger.directory(attacker).resolve(QuotaEnforcement.FROZEN_MARKER));
        quotas.reaper().reapOnce();
        assertThat(quotas.frozen()).isEmpty();
        assertThat(control(attacker).devices().getFirst().memoryLimitBytes()).isEqualTo(8 * GIB);
        assertThat(killed).isEmpty();
    }

    @Test
    void aFindingOfAPassBeforeTheReportPathExistsIsHandedOverNotLost() throws Exception {
        // the reaper starts before the tenancy services: a file already tampered at agent start
        quotas = new QuotaEnforcement(
                ledger, new FakeNvml(gpus), 100_000_000L, AgentConfig.TamperAction.REPORT, pid -> killed.add(pid));
        putLong(usage(attacker), 0, 0L);
        quotas.reaper().reapOnce();
        quotas.reaper().reapOnce();

        quotas.reportTo(findings::add);

        assertThat(findings).singleElement().satisfies(f -> assertThat(f.pod()).isEqualTo("attacker"));
    }

    @Test
    void reportOnlyReportsAndAFullSlotTableIsReportedButNotPunished() throws Exception {
        enforce(AgentConfig.TamperAction.REPORT);
        try (ShimLikeWriter shim = new ShimLikeWriter(usage(neighbour))) {
            for (int i = 0; i < ShmLayout.MAX_SLOTS; i++) {
                shim.claim(
                        ProcessHandle.current().pid() > Integer.MAX_VALUE
                                ? 1
                                : (int) ProcessHandle.current().pid(),
                        0); // half-claimed slots: given a grace period, so they stay for this pass
            }
        }
        putLong(usage(attacker), 0, 0L);

        quotas.reaper().reapOnce();

        assertThat(findings)
                .extracting(AuditFinding::reason)
                .containsExactlyInAnyOrder(AuditFinding.Reason.USAGE_TAMPERED, AuditFinding.Reason.SLOTS_EXHAUSTED);
        assertThat(findings)
                .filteredOn(f -> f.reason() == AuditFinding.Reason.SLOTS_EXHAUSTED)
                .singleElement()
                .satisfies(f -> assertThat(f.pod()).isEqualTo("victim"));
        assertThat(quotas.frozen()).isEmpty();
        assertThat(control(attacker).devices().getFirst().memoryLimitBytes()).isEqualTo(8 * GIB);
    }

    @Test
    void killNeverSignalsAProcessThatAForgedSlotNamesUnlessItRunsInThatContainer() throws Exception {
        enforce(AgentConfig.TamperAction.KILL);
        Process bystander = new ProcessBuilder("sleep", "60").start(); // another tenant's process, say
        try {
            int pid = (int) bystander.pid();
            String stat = Files.readString(Path.of("/proc", Integer.toString(pid), "stat"));
            String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ", -1);
            long startTicks = Long.parseLong(fields[19]); // field 22 of /proc/pid/stat
            long pidNs = Long.parseLong(Files.readSymbolicLink(Path.of("/proc/self/ns/pid"))
                    .toString()
                    .replaceAll("\\D", ""));
            try (ShimLikeWriter shim = new ShimLikeWriter(usage(attacker))) {
                int slot = shim.claim(pid, startTicks);
                putLong(
                        usage(attacker),
                        ShmLayout.USAGE_SLOTS_OFFSET
                                + slot * ShmLayout.USAGE_SLOT.byteSize()
                                + ShmLayout.offset(ShmLayout.USAGE_SLOT, "pid_ns_inode"),
                        pidNs);
            }
            putLong(
                    usage(attacker),
                    ShmLayout.USAGE_DEVICES_OFFSET + ShmLayout.offset(ShmLayout.USAGE_DEVICE, "bytes_reserved"),
                    0L);
            try (ShimLikeWriter shim = new ShimLikeWriter(usage(attacker))) {
                shim.allocate(0, 0, GIB); // slot 0 now holds more than the total: tampered
                shim.reserveOnly(0, -GIB);
            }

            quotas.reaper().reapOnce();

            assertThat(findings).singleElement().satisfies(f -> {
                assertThat(f.reason()).isEqualTo(AuditFinding.Reason.USAGE_TAMPERED);
                assertThat(f.killed()).isFalse();
            });
            assertThat(killed)
                    .as("the slot's process does not see this usage file at /run/omai/usage")
                    .isEmpty();
            assertThat(bystander.isAlive()).isTrue();
        } finally {
            bystander.destroyForcibly();
        }
    }
}
