package io.omai.harness.audit;

import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.gpu.GpuProcesses;
import io.omai.agent.ledger.Allocation;
import io.omai.agent.ledger.AllocationClaim;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.quota.audit.AuditFinding;
import io.omai.agent.quota.audit.ProcessIdentity;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.agent.tenancy.GpuProcessAudit;
import io.omai.simulator.util.ScratchDirectories;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * What one NVML audit pass costs the agent with 64 allocations: 8 GPUs, 8 shares of 125 milli on each, two live
 * processes per allocation (real {@code sleep} processes, so the audit's /proc reads of cgroup and mount namespace
 * are real), each holding a slot in its usage file. NVML's process list and GPU time are given from memory, so the
 * figure is the audit's own work — reading 64 usage and control files, 128 processes' identities, attributing,
 * summing, comparing with quotas and grants — without the driver's calls (one process list and one utilisation
 * query per GPU per pass on top). Prints p50, p99 and max per pass.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp test-harness/target/classes:$(cat test-harness/target/benchmark.classpath) \
 *     io.omai.harness.audit.AuditBenchmark [passes [warmup]]
 * </pre>
 */
public final class AuditBenchmark {
    private static final int GPUS = 8;
    private static final int PER_GPU = 8;
    private static final int SHARE = 1000 / PER_GPU;
    private static final long GPU_MEMORY = 80L << 30;

    private AuditBenchmark() {}

    public static void main(String[] args) throws Exception {
        int passes = args.length > 0 ? Integer.parseInt(args[0]) : 2000;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 500;
        Path state = Files.createTempDirectory("omai-audit-bench");
        List<Process> sleepers = new ArrayList<>();
        List<GpuDevice> gpus = IntStream.range(0, GPUS)
                .mapToObj(i -> new GpuDevice(
                        i,
                        String.format(Locale.ROOT, "GPU-bench000-0000-4000-8000-%012d", i),
                        "Bench GPU",
                        i,
                        GPU_MEMORY,
                        i / 4))
                .toList();
        try (AllocationLedger ledger =
                AllocationLedger.open(gpus, ConfigLoader.defaults().sharing(), state, Clock.systemUTC())) {
            Map<String, List<GpuProcesses.GpuProcess>> running = new HashMap<>();
            Map<String, Map<Integer, Long>> busy = new HashMap<>();
            for (GpuDevice gpu : gpus) {
                for (int k = 0; k < PER_GPU; k++) {
                    int first = k * SHARE;
                    Allocation allocation = ledger.allocate(
                            IntStream.range(first, first + SHARE)
                                    .mapToObj(s -> new MilliGpuId(gpu.uuid(), s).id())
                                    .toList(),
                            new AllocationClaim(
                                    "uid-" + gpu.index() + "-" + k,
                                    "ns-" + k,
                                    "pod-" + gpu.index(),
                                    "main",
                                    "tenant-" + k,
                                    GPU_MEMORY / PER_GPU));
                    for (int p = 0; p < 2; p++) {
                        Process sleeper = new ProcessBuilder("sleep", "3600").start();
                        sleepers.add(sleeper);
                        int pid = (int) sleeper.pid();
                        claimSlot(ledger.directory(allocation).resolve(AllocationFiles.USAGE), p, pid);
                        running.computeIfAbsent(gpu.uuid(), u -> new ArrayList<>())
                                .add(new GpuProcesses.GpuProcess(pid, 1L << 30));
                        busy.computeIfAbsent(gpu.uuid(), u -> new HashMap<>()).put(pid, 1_000_000L);
                    }
                }
            }
            long[] clock = {0};
            GpuProcessAudit audit = new GpuProcessAudit(
                    ledger,
                    gpu -> running.get(gpu.uuid()),
                    ProcessIdentity.PROC,
                    uuid -> busy.get(uuid),
                    () -> clock[0] += 5_000_000_000L,
                    false,
                    pid -> false);
            for (int i = 0; i < warmup; i++) {
                requireNoFindings(audit.auditOnce());
            }
            long[] nanos = new long[passes];
            for (int i = 0; i < passes; i++) {
                long started = System.nanoTime();
                requireNoFindings(audit.auditOnce());
                nanos[i] = System.nanoTime() - started;
            }
            Arrays.sort(nanos);
            System.out.printf(
                    Locale.ROOT,
                    "audit pass, %d allocations on %d GPUs, %d processes: p50 %.3f ms, "
                            + "p99 %.3f ms, max %.3f ms (%d passes after %d warm-up)%n",
                    GPUS * PER_GPU,
                    GPUS,
                    sleepers.size(),
                    nanos[passes / 2] / 1e6,
                    nanos[(int) (passes * 0.99)] / 1e6,
                    nanos[passes - 1] / 1e6,
                    passes,
                    warmup);
        } finally {
            sleepers.forEach(Process::destroyForcibly);
            ScratchDirectories.deleteTree(state);
        }
    }

    private static void requireNoFindings(List<AuditFinding> findings) {
        if (!findings.isEmpty()) {
            throw new IllegalStateException(
                    "the benchmark's node is clean, yet: " + findings.get(0).describe());
        }
    }

    /** A slot as the shim claims it: pid, then state active. */
    private static void claimSlot(Path usage, int slot, int pid) throws IOException {
        try (Arena arena = Arena.ofConfined();
                FileChannel channel = FileChannel.open(usage, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            MemorySegment seg = channel.map(FileChannel.MapMode.READ_WRITE, 0, channel.size(), arena);
            long at = ShmLayout.USAGE_SLOTS_OFFSET + slot * ShmLayout.USAGE_SLOT.byteSize();
            seg.set(ValueLayout.JAVA_INT, at + ShmLayout.offset(ShmLayout.USAGE_SLOT, "pid"), pid);
            seg.set(ValueLayout.JAVA_LONG, at + ShmLayout.offset(ShmLayout.USAGE_SLOT, "start_time_ticks"), 1L);
            seg.set(ValueLayout.JAVA_INT, at + ShmLayout.offset(ShmLayout.USAGE_SLOT, "state"), ShmLayout.SLOT_ACTIVE);
        }
    }
}
