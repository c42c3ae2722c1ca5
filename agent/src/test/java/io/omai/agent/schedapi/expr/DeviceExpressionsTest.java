package io.omai.agent.schedapi.expr;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.schedapi.v1.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class DeviceExpressionsTest {
    private static final long GIB = 1L << 30;
    private final DeviceExpressions expressions = new DeviceExpressions(4);

    private static final Device H100 = Device.newBuilder()
            .setUuid("GPU-1111")
            .setIndex(3)
            .setModel("NVIDIA H100 80GB HBM3")
            .setMemory(80 * GIB)
            .setClass_("train")
            .setNuma(1)
            .addTags("nvlink")
            .addTags("fast")
            .setMilliCapacity(1000)
            .setMilliFree(700)
            .setMemoryFree(60 * GIB)
            .putAttributes("compute_capability", "9.0")
            .putAttributes("rack", "r12")
            .build();

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            quoteCharacter = '"',
            value = {
                "device.memory >= quantity('40Gi')                                   | true",
                "device.memory_free > quantity('64Gi')                               | false",
                "device.model.startsWith('NVIDIA H100')                              | true",
                "device.model.matches('[AH]100 [0-9]+GB')                            | true",
                "device.class == 'train' && device.numa == 1                         | true",
                "device.class in ['infer', 'batch']                                  | false",
                "'nvlink' in device.tags                                             | true",
                "device.tags.exists(t, t.startsWith('fa'))                           | true",
                "device.tags.all(t, size(t) > 4)                                     | false",
                "size(device.tags) == 2                                              | true",
                "device.milli_free * 2 > device.milli_capacity                       | true",
                "device.attributes['compute_capability'] == '9.0'                    | true",
                "'rack' in device.attributes && device.attributes.rack == 'r12'      | true",
                "device.index % 2 == 1 && device.uuid.endsWith('1111')               | true",
            })
    void test_coversAttributesArithmeticStringsListsAndQuantities(String text, boolean expected) throws Exception {
        assertThat(expressions.compile(text).test(H100)).isEqualTo(expected);
    }

    @Test
    void compile_unknownFieldIsRefusedWithItsPosition() {
        assertThatThrownBy(() -> expressions.compile("device.memory > 1 && device.colour == 'red'"))
                .isInstanceOfSatisfying(ExpressionException.class, e -> {
                    assertThat(e.getMessage()).contains("colour");
                    assertThat(e.line()).isEqualTo(1);
                    assertThat(e.column()).isEqualTo(28);
                });
    }

    @Test
    void compile_syntaxErrorIsRefusedWithItsPosition() {
        assertThatThrownBy(() -> expressions.compile("device.memory >"))
                .isInstanceOfSatisfying(ExpressionException.class, e -> {
                    assertThat(e.line()).isEqualTo(1);
                    assertThat(e.column()).isPositive();
                });
    }

    @Test
    void compile_nonBoolResultIsRefusedAtCompileTime() {
        assertThatThrownBy(() -> expressions.compile("device.memory + 1"))
                .isInstanceOf(ExpressionException.class)
                .hasMessageContaining("bool");
    }

    @Test
    void compile_badQuantityLiteralIsRefusedAtCompileTime() {
        assertThatThrownBy(() -> expressions.compile("device.memory >= quantity(\"40GB\")"))
                .isInstanceOfSatisfying(ExpressionException.class, e -> {
                    assertThat(e.getMessage()).contains("quantity(): '40GB' is not a quantity");
                    assertThat(e.column()).isEqualTo(27);
                });
    }

    @Test
    void test_missingAttributeKeyIsAnEvaluationError() throws Exception {
        DeviceExpression expression = expressions.compile("device.attributes['nvlink_gen'] == '4'");

        assertThatThrownBy(() -> expression.test(H100))
                .isInstanceOf(ExpressionException.class)
                .hasMessageStartingWith("this device has no key or attribute 'nvlink_gen'");
    }

    @Test
    void compile_cachesByTextAndEvictsTheLeastRecentlyUsed() throws Exception {
        DeviceExpression first = expressions.compile("device.index == 0");
        for (int i = 1; i <= 3; i++) {
            expressions.compile("device.index == " + i);
        }
        assertThat(expressions.compile("device.index == 0")).isSameAs(first);
        expressions.compile("device.index == 4");

        assertThat(expressions.cachedCount()).isEqualTo(4);
        assertThat(expressions.compile("device.index == 0")).isSameAs(first);
        assertThat(expressions.compile("device.index == 1")).isNotSameAs(null);
    }

    @Test
    void compile_refusesOverlongExpressions() {
        String text = "device.index == 0" + " || device.index == 0".repeat(200);

        assertThatThrownBy(() -> expressions.compile(text))
                .isInstanceOf(ExpressionException.class)
                .hasMessageContaining("the limit is 2048");
    }
}
