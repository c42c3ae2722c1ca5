package io.omai.harness.shim;

import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.UsageSnapshot;
import io.omai.simulator.sim.SimNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One simulated node plus one container allocation on it: the agent's control/usage files (made with
 * {@link AllocationFiles#create}, exactly as the agent does), and programs started under the real shim
 * ({@code LD_PRELOAD=native/build/lib/libomai-shim.so}) against the simulated driver.
 */
final class ShimFixture implements AutoCloseable {
    static final long MiB = 1L << 20;
    static final long GPU_MEMORY = 80L << 30;
    static final Duration RUN_TIMEOUT = Duration.ofSeconds(60);

    final SimNode node;
    final AllocationFiles files;
    final Path allocDir;

    private ShimFixture(SimNode node, AllocationFiles files, Path allocDir) {
        this.node = node;
        this.files = files;
        this.allocDir = allocDir;
    }

    /** A node of {@code gpus} simulated GPUs; the container gets GPU i with memory limit limits[i]. */
    static ShimFixture create(Path tmp, int gpus, long... limits) {
        SimNode node = SimNode.create(tmp.resolve("sim"), gpus, GPU_MEMORY);
        List<DeviceQuota> devices = new ArrayList<>();
        for (int i = 0; i < limits.length; i++) {
            devices.add(new DeviceQuota(SimNode.uuidOf(i), i, limits[i], 1000, ComputeMode.HARD_CAP));
        }
        Path dir = tmp.resolve("alloc");
        try {
            AllocationFiles files =
                    AllocationFiles.create(dir, new AllocationSpec("test/pod/c", devices, false, 100_000));
            return new ShimFixture(node, files, dir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Path shimLibrary() {
        Path lib = SimNode.nativeBuildDir().resolve("lib").resolve("libomai-shim.so");
        if (!Files.isRegularFile(lib)) {
            throw new IllegalStateException(lib + " is missing: build it with make -C native all");
        }
        return lib;
    }

    /** The environment of a process of this container: the shim preloaded and pointed at our files. */
    Map<String, String> shimEnv() {
        Map<String, String> env = new HashMap<>();
        env.put("LD_PRELOAD", shimLibrary().toString());
        env.put("OMAI_CONTROL_FILE", allocDir.resolve(AllocationFiles.CONTROL).toString());
        env.put("OMAI_USAGE_FILE", allocDir.resolve(AllocationFiles.USAGE).toString());
        return env;
    }

    SimNode.Run run(String program, String... args) {
        return start(program, args).finish(RUN_TIMEOUT);
    }

    SimNode.Run runWith(Map<String, String> env, String program, String... args) {
        return node.start(env, program, args).finish(RUN_TIMEOUT);
    }

    SimNode.Started start(String program, String... args) {
        return node.start(shimEnv(), program, args);
    }

    UsageSnapshot usage() {
        return files.usage().read();
    }

    long reserved(int device) {
        return usage().devices().get(device).bytesReserved();
    }

    @Override
    public void close() {
        files.close();
    }
}
