package io.omai.agent.schedapi;

/**
 * A request that is malformed before any state is looked at. The message names the field by its proto path,
 * the value and what was expected: {@code containers[1].milli: 1500 is not a share below 1000 nor a multiple
 * of 1000}.
 */
public final class InvalidRequestException extends RuntimeException {
    private final String field;

    public InvalidRequestException(String field, String problem) {
        super(field + ": " + problem);
        this.field = field;
    }

    public String field() {
        return field;
    }
}
