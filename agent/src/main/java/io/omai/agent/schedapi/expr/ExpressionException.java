package io.omai.agent.schedapi.expr;

/**
 * A resource expression that does not compile (syntax, unknown field, not bool) or cannot be evaluated. The
 * message is CEL's, with the position where it has one.
 */
public final class ExpressionException extends Exception {
    private final int line;
    private final int column;

    public ExpressionException(String message, int line, int column) {
        super(message);
        this.line = line;
        this.column = column;
    }

    /** 1-based; 0 when CEL gave no position. */
    public int line() {
        return line;
    }

    /** 1-based; 0 when CEL gave no position. */
    public int column() {
        return column;
    }
}
