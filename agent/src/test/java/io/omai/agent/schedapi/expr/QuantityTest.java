package io.omai.agent.schedapi.expr;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class QuantityTest {
    @ParameterizedTest
    @CsvSource({
        "40Gi, 42949672960",
        "1.5Gi, 1610612736",
        "80G, 80000000000",
        "512Mi, 536870912",
        "1k, 1000",
        "1e9, 1000000000",
        "2E3, 2000",
        "123, 123",
        "1Ei, 1152921504606846976",
    })
    void parseBytes_kubernetesSuffixes(String text, long bytes) {
        assertThat(Quantity.parseBytes(text)).isEqualTo(bytes);
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "40GB", "40 Gi", "-1Gi", "Gi", "1K", "40gi"})
    void parseBytes_refusesOtherForms(String text) {
        assertThatThrownBy(() -> Quantity.parseBytes(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'" + text + "' is not a quantity");
    }

    @ParameterizedTest
    @ValueSource(strings = {"0.1", "9Ei", "1e30"})
    void parseBytes_refusesFractionsAndOverflow(String text) {
        assertThatThrownBy(() -> Quantity.parseBytes(text))
                .hasMessageContaining("is not a whole number of bytes below 2^63");
    }
}
