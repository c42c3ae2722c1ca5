package io.omai.agent.gpu;

/** An NVML call that did not return {@code NVML_SUCCESS}: names the function, the code and NVML's text. */
public final class NvmlException extends Exception {
    private final String function;
    private final int code;

    public NvmlException(String function, int code, String description) {
        super(function + " failed: " + description + " (nvmlReturn_t " + code + ")");
        this.function = function;
        this.code = code;
    }

    public String function() {
        return function;
    }

    /** The raw {@code nvmlReturn_t}. */
    public int code() {
        return code;
    }
}
