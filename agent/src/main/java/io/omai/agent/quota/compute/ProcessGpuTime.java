package io.omai.agent.quota.compute;

import java.util.Map;

/**
 * GPU busy time per host process on one GPU, as NVML's per-process utilisation samples report it. Sampled once
 * per GPU per period for every container on it (HAMi samples once per process).
 */
@FunctionalInterface
public interface ProcessGpuTime {
    /**
     * Busy nanoseconds per host pid since the previous call for this GPU.
     *
     * @throws GpuTimeUnavailableException when NVML cannot say; the controller then trusts the shims' charges
     */
    Map<Integer, Long> busySinceLastSample(String gpuUuid) throws GpuTimeUnavailableException;

    /** NVML could not report per-process utilisation for a GPU. */
    final class GpuTimeUnavailableException extends Exception {
        private static final long serialVersionUID = 1L;

        public GpuTimeUnavailableException(String message) {
            super(message);
        }
    }
}
