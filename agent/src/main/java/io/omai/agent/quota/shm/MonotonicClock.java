package io.omai.agent.quota.shm;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * {@code clock_gettime(CLOCK_MONOTONIC)} in nanoseconds: the clock the shim reads, so heartbeats written by the
 * agent and compared by the shim share an origin. {@link System#nanoTime()} happens to use the same clock on
 * Linux HotSpot, but the specification promises no origin, so we ask the kernel directly.
 */
public final class MonotonicClock {
    private static final int CLOCK_MONOTONIC = 1;

    @SuppressWarnings("restricted") // binding libc's clock_gettime is this class's purpose
    private static final MethodHandle clock_gettime$mh = Linker.nativeLinker()
            .downcallHandle(
                    Linker.nativeLinker()
                            .defaultLookup()
                            .find("clock_gettime")
                            .orElseThrow(
                                    () -> new LinkageError("Native function clock_gettime could not be found in libc")),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS));

    private static final ThreadLocal<MemorySegment> TIMESPEC =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(16, 8));

    private MonotonicClock() {}

    /** Nanoseconds of CLOCK_MONOTONIC. */
    public static long nanos() {
        MemorySegment ts = TIMESPEC.get();
        int rc;
        try {
            rc = (int) clock_gettime$mh.invokeExact(CLOCK_MONOTONIC, ts);
        } catch (Throwable t) {
            throw new AssertionError("clock_gettime downcall failed", t);
        }
        if (rc != 0) {
            throw new IllegalStateException("clock_gettime(CLOCK_MONOTONIC) returned " + rc);
        }
        return ts.get(ValueLayout.JAVA_LONG, 0) * 1_000_000_000L + ts.get(ValueLayout.JAVA_LONG, 8);
    }
}
