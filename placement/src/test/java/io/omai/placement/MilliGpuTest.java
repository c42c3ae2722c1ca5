package io.omai.placement;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class MilliGpuTest {
    @Test
    void validity_sharesBelow1000AndWholeMultiples() {
        assertThat(MilliGpu.isValid(0)).isTrue();
        assertThat(MilliGpu.isValid(999)).isTrue();
        assertThat(MilliGpu.isValid(3000)).isTrue();
        assertThat(MilliGpu.isValid(1500)).isFalse();
        assertThat(MilliGpu.isValid(-1)).isFalse();
        assertThat(MilliGpu.describeInvalid(1500)).isEqualTo("1500 is not a share below 1000 nor a multiple of 1000");
    }

    @Test
    void gpuCount_andPerGpuMilli() {
        assertThat(MilliGpu.gpuCount(250)).isEqualTo(1);
        assertThat(MilliGpu.gpuCount(4000)).isEqualTo(4);
        assertThat(MilliGpu.perGpu(250)).isEqualTo(250);
        assertThat(MilliGpu.perGpu(4000)).isEqualTo(1000);
    }

    @Test
    void defaultMemory_isProportionalWithoutOverflow() {
        assertThat(MilliGpu.defaultMemory(250, 80L << 30)).isEqualTo(20L << 30);
        assertThat(MilliGpu.defaultMemory(999, Long.MAX_VALUE)).isPositive();
        assertThat(MilliGpu.defaultMemory(2000, 80L << 30)).isEqualTo(80L << 30);
    }
}
