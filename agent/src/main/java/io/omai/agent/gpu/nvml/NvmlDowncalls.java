package io.omai.agent.gpu.nvml;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The one place that finds NVML symbols and links them. Bindings never call {@link Linker} themselves.
 * The library is chosen once per JVM ({@link #useLibrary}) before {@link FfmNvmlLibrary} is first touched,
 * because its handles are {@code static final}.
 */
public final class NvmlDowncalls {
    /** The library name kubelet hosts have. */
    public static final String DEFAULT_LIBRARY = "libnvidia-ml.so.1";

    private static final AtomicReference<String> CONFIGURED = new AtomicReference<>();
    private static final Linker LINKER = Linker.nativeLinker();

    private NvmlDowncalls() {}

    /**
     * Chooses the NVML library for this JVM: a name searched like {@code dlopen} does, or a path.
     *
     * @throws IllegalStateException when another library was chosen already
     */
    public static void useLibrary(String library) {
        if (!CONFIGURED.compareAndSet(null, library) && !CONFIGURED.get().equals(library)) {
            throw new IllegalStateException("NVML is already bound to " + CONFIGURED.get() + "; cannot switch to "
                    + library + " in the same JVM");
        }
    }

    /** The library chosen, or the default. */
    public static String library() {
        String library = CONFIGURED.get();
        return library == null ? DEFAULT_LIBRARY : library;
    }

    /**
     * Opens a library for symbol lookup.
     *
     * @throws LinkageError naming the library and why it could not be opened
     */
    @SuppressWarnings("restricted")
    public static SymbolLookup open(String library) {
        try {
            return library.contains("/")
                    ? SymbolLookup.libraryLookup(Path.of(library), Arena.global())
                    : SymbolLookup.libraryLookup(library, Arena.global());
        } catch (IllegalArgumentException e) {
            throw new LinkageError("NVML library " + library + " could not be loaded (" + e.getMessage()
                    + "); expected the NVIDIA driver's libnvidia-ml.so.1 or nvml.library pointing at it");
        } catch (IllegalCallerException e) {
            throw new LinkageError(
                    "native access is disabled; start the JVM with --enable-native-access=ALL-UNNAMED "
                            + "(the agent jar's manifest sets Enable-Native-Access)",
                    e);
        }
    }

    /**
     * Links a required function.
     *
     * @throws LinkageError naming the function and the library when the symbol is missing
     */
    @SuppressWarnings("restricted")
    public static MethodHandle required(SymbolLookup lookup, String library, String name, FunctionDescriptor fd) {
        MemorySegment symbol = lookup.find(name)
                .orElseThrow(() -> new LinkageError("Native function " + name + " could not be found in " + library));
        return LINKER.downcallHandle(symbol, fd);
    }

    /** Links a function that older drivers may lack; empty when the symbol is missing. */
    @SuppressWarnings("restricted")
    public static Optional<MethodHandle> optional(SymbolLookup lookup, String name, FunctionDescriptor fd) {
        return lookup.find(name).map(symbol -> LINKER.downcallHandle(symbol, fd));
    }
}
