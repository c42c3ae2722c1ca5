package io.omai.agent.schedapi.expr;

import dev.cel.common.CelErrorCode;
import dev.cel.runtime.CelEvaluationException;
import dev.cel.runtime.CelRuntime;
import io.omai.agent.schedapi.v1.Device;
import java.util.Map;

/** A compiled, type-checked resource expression. Thread-safe: CEL programs hold no per-evaluation state. */
public final class DeviceExpression {
    private final String text;
    private final CelRuntime.Program program;

    DeviceExpression(String text, CelRuntime.Program program) {
        this.text = text;
        this.program = program;
    }

    public String text() {
        return text;
    }

    /**
     * Whether {@code device} satisfies the expression.
     *
     * @throws ExpressionException when evaluation fails for this device, e.g. a missing attribute key
     */
    public boolean test(Device device) throws ExpressionException {
        try {
            // the compiler fixed the result type to bool, so anything else is a bug in CEL, not in the input
            return (Boolean) program.eval(Map.of(DeviceExpressions.VARIABLE, device));
        } catch (CelEvaluationException e) {
            throw new ExpressionException(describe(e), 0, 0);
        }
    }

    /** CEL says only "evaluation error at <input>:17: x" for a missing map key; name what x is. */
    private static String describe(CelEvaluationException e) {
        if (e.getErrorCode() == CelErrorCode.ATTRIBUTE_NOT_FOUND && e.getCause() != null) {
            return "this device has no key or attribute '" + e.getCause().getMessage() + "' (" + e.getMessage()
                    + "); guard with 'key' in device.attributes";
        }
        return e.getMessage();
    }

    @Override
    public String toString() {
        return text;
    }
}
