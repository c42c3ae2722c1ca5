package io.omai.agent.schedapi;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Fixture vocabulary: the node shapes the scheduler API tests talk about. */
final class NodeFixtures {
    static final long GIB = 1L << 30;
    static final String MODEL = "NVIDIA H100 80GB HBM3";

    private NodeFixtures() {}

    static String uuid(int index) {
        return "GPU-0000000" + index;
    }

    static String vf(int hca, int index) {
        return "0000:" + (hca == 0 ? "3b" : "d8") + ":00." + (index + 2);
    }

    /**
     * Eight idle 80 GiB GPUs: 0-3 on NUMA 0 with class train and tag nvlink, 4-7 on NUMA 1 with class infer; two
     * HCAs (mlx5_0 on NUMA 0, mlx5_1 on NUMA 1) with four free VFs each.
     */
    static NodeSnapshot eightGpus() {
        var gpus = new ArrayList<GpuSnapshot>();
        for (int i = 0; i < 8; i++) {
            boolean train = i < 4;
            gpus.add(new GpuSnapshot(
                    uuid(i),
                    i,
                    MODEL,
                    80 * GIB,
                    1000,
                    0,
                    0,
                    DeviceHealth.HEALTHY,
                    train ? 0 : 1,
                    Map.of("class", train ? "train" : "infer", "compute_capability", "9.0"),
                    train ? Set.of("nvlink") : Set.of(),
                    Set.of()));
        }
        return new NodeSnapshot("node-a", 1, gpus, List.of(hca(0), hca(1)));
    }

    private static HcaSnapshot hca(int number) {
        List<String> vfs = List.of(vf(number, 0), vf(number, 1), vf(number, 2), vf(number, 3));
        return new HcaSnapshot(
                "mlx5_" + number,
                number == 0 ? "0000:3b:00.0" : "0000:d8:00.0",
                number,
                "InfiniBand",
                vfs,
                Set.copyOf(vfs),
                List.of());
    }
}
