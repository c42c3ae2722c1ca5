package io.omai.agent.quota.shm;

import static io.omai.agent.quota.shm.ShmLayout.USAGE_DEVICE;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_SLOT;
import static io.omai.agent.quota.shm.ShmLayout.USAGE_SLOT_DEVICE;
import static io.omai.agent.quota.shm.ShmLayout.offset;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** Writes a usage file the way the shim does (claim by CAS, reserve-then-commit, launch counters), from Java. */
public final class ShimLikeWriter implements AutoCloseable {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment seg;

    public ShimLikeWriter(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, ch.size(), arena);
        }
    }

    public int claim(int pid, long startTicks) {
        for (int s = 0; s < ShmLayout.MAX_SLOTS; s++) {
            long at = ShmLayout.USAGE_SLOTS_OFFSET + s * USAGE_SLOT.byteSize();
            if (ShmLayout.INT.compareAndSet(seg, at + offset(USAGE_SLOT, "pid"), 0, pid)) {
                ShmLayout.INT.setRelease(seg, at + offset(USAGE_SLOT, "state"), ShmLayout.SLOT_CLAIMED);
                ShmLayout.LONG.setRelease(seg, at + offset(USAGE_SLOT, "start_time_ticks"), startTicks);
                ShmLayout.INT.setRelease(seg, at + offset(USAGE_SLOT, "state"), ShmLayout.SLOT_ACTIVE);
                return s;
            }
        }
        throw new IllegalStateException("no free slot");
    }

    public void allocate(int slot, int device, long bytes) {
        long total = ShmLayout.USAGE_DEVICES_OFFSET
                + device * USAGE_DEVICE.byteSize()
                + offset(USAGE_DEVICE, "bytes_reserved");
        ShmLayout.LONG.getAndAdd(seg, total, bytes);
        long mine = ShmLayout.USAGE_SLOTS_OFFSET
                + slot * USAGE_SLOT.byteSize()
                + offset(USAGE_SLOT, "devices")
                + device * USAGE_SLOT_DEVICE.byteSize()
                + offset(USAGE_SLOT_DEVICE, "bytes_in_use");
        ShmLayout.LONG.getAndAdd(seg, mine, bytes);
    }

    /** A reservation whose process died before committing it to its slot. */
    public void reserveOnly(int device, long bytes) {
        ShmLayout.LONG.getAndAdd(
                seg,
                ShmLayout.USAGE_DEVICES_OFFSET
                        + device * USAGE_DEVICE.byteSize()
                        + offset(USAGE_DEVICE, "bytes_reserved"),
                bytes);
    }

    @Override
    public void close() {
        arena.close();
    }

    /** What the shim records for {@code launches} launches charged {@code tokensNs} after waiting {@code throttledNs}. */
    public void launched(int slot, int device, long launches, long tokensNs, long throttledNs) {
        long totals = ShmLayout.USAGE_DEVICES_OFFSET + device * USAGE_DEVICE.byteSize();
        ShmLayout.LONG.getAndAdd(seg, totals + offset(USAGE_DEVICE, "launches"), launches);
        ShmLayout.LONG.getAndAdd(seg, totals + offset(USAGE_DEVICE, "tokens_consumed_ns"), tokensNs);
        ShmLayout.LONG.getAndAdd(seg, totals + offset(USAGE_DEVICE, "throttled_ns"), throttledNs);
        long mine = ShmLayout.USAGE_SLOTS_OFFSET
                + slot * USAGE_SLOT.byteSize()
                + offset(USAGE_SLOT, "devices")
                + device * USAGE_SLOT_DEVICE.byteSize();
        ShmLayout.LONG.getAndAdd(seg, mine + offset(USAGE_SLOT_DEVICE, "launches"), launches);
        ShmLayout.LONG.getAndAdd(seg, mine + offset(USAGE_SLOT_DEVICE, "tokens_consumed_ns"), tokensNs);
        ShmLayout.LONG.getAndAdd(seg, mine + offset(USAGE_SLOT_DEVICE, "throttled_ns"), throttledNs);
    }
}
