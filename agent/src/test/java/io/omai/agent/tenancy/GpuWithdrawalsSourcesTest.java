package io.omai.agent.tenancy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Two sources withdraw GPUs (another plugin, DRA claims); neither erases the other's. */
class GpuWithdrawalsSourcesTest {
    @Test
    void eachSourceReplacesOnlyItsOwnSetAndAGpuStaysWithdrawnWhileAnyNamesIt() {
        GpuWithdrawals withdrawals = new GpuWithdrawals();
        AtomicInteger heard = new AtomicInteger();
        withdrawals.onChange(heard::incrementAndGet);

        withdrawals.replace(GpuWithdrawals.DRA, Map.of("GPU-0", "holds DRA claim c1", "GPU-1", "holds DRA claim c2"));
        // the coexistence check runs every interval with its own findings: the DRA ones stay
        withdrawals.replace(Map.of("GPU-1", "kubelet reports it as nvidia.com/gpu"));

        assertThat(withdrawals.current()).containsOnlyKeys("GPU-0", "GPU-1");
        assertThat(withdrawals.reason("GPU-1"))
                .hasValueSatisfying(
                        reason -> assertThat(reason).contains("nvidia.com/gpu").contains("holds DRA claim c2"));
        assertThat(withdrawals.of(GpuWithdrawals.OTHER_PLUGIN)).containsOnlyKeys("GPU-1");
        assertThat(withdrawals.of(GpuWithdrawals.DRA)).containsOnlyKeys("GPU-0", "GPU-1");

        withdrawals.replace(GpuWithdrawals.DRA, Map.of());
        assertThat(withdrawals.current()).containsOnlyKeys("GPU-1");
        withdrawals.replace(Map.of());
        assertThat(withdrawals.current()).isEmpty();
        assertThat(heard).hasValue(4);

        withdrawals.replace(Map.of()); // no change: nobody hears of it
        assertThat(heard).hasValue(4);
    }
}
