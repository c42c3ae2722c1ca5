package io.omai.simulator.simulate;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Sets variables in this process's C environment. The simulated NVML that the in-process agent loads reads
 * {@code OMAI_SIM_CONFIG} and {@code OMAI_SIM_STATE} with getenv(3); Java cannot change its own environment,
 * but libc's setenv(3) can, before the library is first used.
 */
final class NativeEnvironment {
    @SuppressWarnings("restricted") // binding libc's setenv is this class's purpose
    private static final MethodHandle setenv$mh = Linker.nativeLinker()
            .downcallHandle(
                    Linker.nativeLinker()
                            .defaultLookup()
                            .find("setenv")
                            .orElseThrow(() -> new LinkageError("Native function setenv could not be found in libc")),
                    FunctionDescriptor.of(
                            ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));

    private NativeEnvironment() {}

    static void set(String name, String value) {
        try (Arena arena = Arena.ofConfined()) {
            int rc = (int) setenv$mh.invokeExact(arena.allocateFrom(name), arena.allocateFrom(value), 1);
            if (rc != 0) {
                throw new IllegalStateException("setenv(" + name + ") failed with " + rc);
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError("setenv downcall failed", t);
        }
    }
}
