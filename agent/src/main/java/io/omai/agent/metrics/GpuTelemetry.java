package io.omai.agent.metrics;

/**
 * The NVML figures shown per GPU, one family each (ECC: one family, two {@code type}s). A figure NVML does not
 * support on a card (NOT_SUPPORTED, or a driver without the function) has no series for that card: absent, never
 * 0, so a dashboard tells "no sensor" from "cold".
 */
enum GpuTelemetry {
    UTILIZATION(
            "omai.gpu.utilization.ratio",
            null,
            "Share of NVML's last sample period in which a kernel ran on the GPU, 0..1 (nvmlDeviceGetUtilizationRates)",
            null),
    MEMORY_USED(
            "omai.gpu.memory.used",
            "bytes",
            "GPU memory in use by every process on the card, with or without the shim (nvmlDeviceGetMemoryInfo)",
            null),
    TEMPERATURE("omai.gpu.temperature", "celsius", "GPU die temperature (nvmlDeviceGetTemperature)", null),
    POWER("omai.gpu.power", "watts", "Power drawn by the GPU board (nvmlDeviceGetPowerUsage)", null),
    SM_CLOCK("omai.gpu.sm.clock", "hertz", "Current SM clock of the GPU (nvmlDeviceGetClockInfo, NVML_CLOCK_SM)", null),
    MEMORY_CLOCK(
            "omai.gpu.memory.clock",
            "hertz",
            "Current memory clock of the GPU (nvmlDeviceGetClockInfo, NVML_CLOCK_MEM)",
            null),
    ECC_CORRECTED(GpuTelemetry.ECC_ERRORS, null, GpuTelemetry.ECC_HELP, "corrected"),
    ECC_UNCORRECTED(GpuTelemetry.ECC_ERRORS, null, GpuTelemetry.ECC_HELP, "uncorrected");

    static final String ECC_ERRORS = "omai.gpu.ecc.errors";
    static final String ECC_HELP = "GPU memory ECC errors since the driver loaded, by type: corrected (single-bit) or "
            + "uncorrected (double-bit) (nvmlDeviceGetTotalEccErrors, volatile counts; reset when the driver reloads)";

    private final String meterName;
    private final String baseUnit;
    private final String help;
    private final String eccType;

    GpuTelemetry(String meterName, String baseUnit, String help, String eccType) {
        this.meterName = meterName;
        this.baseUnit = baseUnit;
        this.help = help;
        this.eccType = eccType;
    }

    String meterName() {
        return meterName;
    }

    String baseUnit() {
        return baseUnit;
    }

    String help() {
        return help;
    }

    /** A counter (ECC) rather than a gauge. */
    boolean counter() {
        return eccType != null;
    }

    /** The {@code type} label of an ECC count. */
    String eccType() {
        return eccType;
    }
}
