package io.omai.agent.metrics;

import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.ledger.AllocationLedger;
import io.omai.agent.ledger.MilliGpuId;
import io.omai.agent.quota.shm.ShmLayout;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.IntStream;

/** A ledger on fake GPUs, device IDs, a hand-moved clock, and shim-side counters the shared fixture lacks. */
final class MetricsFixtures {
    static final long GPU_MEMORY = 80L << 30;
    static final List<GpuDevice> GPUS = FakeNvml.gpus(2, GPU_MEMORY, 1);

    private MetricsFixtures() {}

    static AllocationLedger ledger(Path state) throws Exception {
        return AllocationLedger.open(
                GPUS,
                ConfigLoader.defaults().sharing(),
                state,
                Clock.fixed(Instant.parse("2026-01-01T00:00:00Z"), ZoneOffset.UTC));
    }

    /** IDs {@code from..from+count-1} of one GPU. */
    static List<String> ids(int gpu, int from, int count) {
        return IntStream.range(from, from + count)
                .mapToObj(slot -> new MilliGpuId(FakeNvml.uuid(gpu), slot).id())
                .toList();
    }

    /** A monotonic clock the test moves. */
    static final class Nanos {
        private final AtomicLong now = new AtomicLong(1_000_000_000L);

        long get() {
            return now.get();
        }

        void advanceSeconds(double seconds) {
            now.addAndGet(Math.round(seconds * 1e9));
        }
    }

    private static final VarHandle DENIED = ValueLayout.JAVA_LONG.varHandle();

    /** Adds to a device's {@code denied_allocs} in a usage file, as the shim does when it refuses at the quota. */
    static void denyAllocations(Path usageFile, int device, long denials) throws IOException {
        try (Arena arena = Arena.ofConfined();
                FileChannel channel = FileChannel.open(usageFile, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            MemorySegment usage = channel.map(FileChannel.MapMode.READ_WRITE, 0, channel.size(), arena);
            DENIED.getAndAdd(
                    usage,
                    ShmLayout.USAGE_DEVICES_OFFSET
                            + device * ShmLayout.USAGE_DEVICE.byteSize()
                            + ShmLayout.offset(ShmLayout.USAGE_DEVICE, "denied_allocs"),
                    denials);
        }
    }

    /** Overwrites one container-wide total of a usage file, as a hostile container can ({@code field}: its C name). */
    static void forgeTotal(Path usageFile, int device, String field, long value) throws IOException {
        try (Arena arena = Arena.ofConfined();
                FileChannel channel = FileChannel.open(usageFile, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            MemorySegment usage = channel.map(FileChannel.MapMode.READ_WRITE, 0, channel.size(), arena);
            DENIED.setVolatile(
                    usage,
                    ShmLayout.USAGE_DEVICES_OFFSET
                            + device * ShmLayout.USAGE_DEVICE.byteSize()
                            + ShmLayout.offset(ShmLayout.USAGE_DEVICE, field),
                    value);
        }
    }
}
