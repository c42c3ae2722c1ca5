package io.omai.agent.ledger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class MilliGpuIdTest {
    @Test
    void roundTripsUuidAndSlot() {
        MilliGpuId id = MilliGpuId.parse("GPU-00000000-0000-4000-8000-000000000001-m999");
        assertThat(id.uuid()).isEqualTo("GPU-00000000-0000-4000-8000-000000000001");
        assertThat(id.slot()).isEqualTo(999);
        assertThat(id.id()).isEqualTo("GPU-00000000-0000-4000-8000-000000000001-m999");
    }

    @Test
    void aRealGpuUuidGivesIdsWithinKubeletsLimit() {
        String longest = new MilliGpuId(
                        "GPU-" + "a".repeat(8) + "-" + "b".repeat(4) + "-" + "c".repeat(4) + "-" + "d".repeat(4) + "-"
                                + "e".repeat(12),
                        999)
                .id();
        assertThat(longest.length()).isLessThanOrEqualTo(MilliGpuId.MAX_ID_LENGTH);
        assertThat(MilliGpuId.maxUuidLength()).isEqualTo(58);
    }

    @Test
    void refusesMalformedIdsSayingWhatIsExpected() {
        assertThatThrownBy(() -> MilliGpuId.parse("GPU-abc")).hasMessageContaining("<gpu-uuid>-m<slot>");
        assertThatThrownBy(() -> MilliGpuId.parse("GPU-abc-m")).hasMessageContaining("<gpu-uuid>-m<slot>");
        assertThatThrownBy(() -> MilliGpuId.parse("GPU-abc-m1000")).hasMessageContaining("0..999");
        assertThatThrownBy(() -> MilliGpuId.parse("GPU-abc-m007")).hasMessageContaining("without leading zeros");
        assertThatThrownBy(() -> MilliGpuId.parse("GPU-abc-mx")).hasMessageContaining("0..999");
        assertThatThrownBy(() -> MilliGpuId.parse(null)).hasMessageContaining("<gpu-uuid>-m<slot>");
    }
}
