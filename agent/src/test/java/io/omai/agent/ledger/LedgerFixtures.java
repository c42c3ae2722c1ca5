package io.omai.agent.ledger;

import io.omai.agent.config.AgentConfig;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.gpu.GpuDevice;
import io.omai.placement.MilliGpu;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

/** Vocabulary for ledger tests: GPUs, IDs and shares. */
final class LedgerFixtures {
    static final long GPU_MEMORY = 80L << 30;

    private LedgerFixtures() {}

    /** {@code count} 80 GiB GPUs, two per NUMA node. */
    static List<GpuDevice> gpus(int count) {
        return FakeNvml.gpus(count, GPU_MEMORY, 2);
    }

    static AgentConfig.Sharing sharing() {
        return ConfigLoader.defaults().sharing();
    }

    static String id(int gpu, int slot) {
        return new MilliGpuId(FakeNvml.uuid(gpu), slot).id();
    }

    /** IDs {@code from..from+count-1} of one GPU. */
    static List<String> ids(int gpu, int from, int count) {
        return IntStream.range(from, from + count)
                .mapToObj(slot -> id(gpu, slot))
                .toList();
    }

    /** Every ID of the given GPUs. */
    static List<String> allIds(int... gpuIndexes) {
        List<String> all = new ArrayList<>();
        for (int gpu : gpuIndexes) {
            all.addAll(ids(gpu, 0, MilliGpu.PER_GPU));
        }
        return all;
    }
}
