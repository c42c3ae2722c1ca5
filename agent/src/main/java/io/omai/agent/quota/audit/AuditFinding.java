package io.omai.agent.quota.audit;

/**
 * A process the audit caught on a shared GPU.
 *
 * @param hostPid the process as NVML reports it (host pid namespace)
 * @param command its command line, as far as /proc shows it ("" when it cannot be read)
 * @param usedBytes the GPU memory NVML says it holds, -1 when NVML cannot tell
 * @param limitBytes its allocation's memory quota on that GPU (0 for a process without a shim slot)
 * @param namespace the pod it belongs to, "" when unknown (a process without a shim slot belongs to no allocation)
 * @param killed whether the audit sent it SIGKILL
 * @param detail what was seen, in words, for findings that are not about one process's memory (a tampered usage
 *     file, a container's total, compute time); "" when {@link #describe()} says it all
 */
public record AuditFinding(
        Reason reason,
        String gpuUuid,
        int hostPid,
        String command,
        long usedBytes,
        long limitBytes,
        String namespace,
        String pod,
        String podUid,
        String allocationId,
        boolean killed,
        String detail) {
    /** What was wrong. */
    public enum Reason {
        /** The process uses the GPU but holds no slot in any allocation's usage file: the shim is not loaded. */
        NO_SHIM,
        /** NVML sees more memory in use than its allocation's quota (beyond the driver's own context memory). */
        MEMORY_OVER_QUOTA,
        /** NVML sees a container's processes on one GPU hold more, together, than the container's quota there. */
        CONTAINER_MEMORY_OVER_QUOTA,
        /** NVML sees a container take more GPU time than its compute grant allows. */
        COMPUTE_OVER_QUOTA,
        /** A container's usage file contradicts itself or its header (truncated, forged, zeroed): tampering. */
        USAGE_TAMPERED,
        /** Every process slot of a container's usage file is taken: its shim refuses new processes. */
        SLOTS_EXHAUSTED
    }

    /** One line for logs and events. */
    public String describe() {
        String who = namespace.isEmpty() ? "a process of no allocation" : "pod " + namespace + "/" + pod;
        String what = switch (reason) {
            case NO_SHIM -> "runs on shared GPU " + gpuUuid + " without the OMAI shim";
            case MEMORY_OVER_QUOTA ->
                "holds " + usedBytes + " bytes on GPU " + gpuUuid + ", above its quota of " + limitBytes
                        + " bytes (allocation " + allocationId + ")";
            case CONTAINER_MEMORY_OVER_QUOTA ->
                "together hold " + usedBytes + " bytes on GPU " + gpuUuid + ", above the container's quota of "
                        + limitBytes + " bytes (allocation " + allocationId + ")";
            case COMPUTE_OVER_QUOTA ->
                "took more GPU time on GPU " + gpuUuid + " than its compute grant (allocation " + allocationId + ")";
            case USAGE_TAMPERED ->
                "has an inconsistent usage file for GPU " + gpuUuid + " (allocation " + allocationId + ")";
            case SLOTS_EXHAUSTED ->
                "has taken every process slot of its usage file (allocation " + allocationId
                        + "); its shim refuses new processes";
        };
        String subject = hostPid > 0
                ? "process " + hostPid + (command.isEmpty() ? "" : " (" + command + ")") + " of " + who
                : who.substring(0, 1).toUpperCase(java.util.Locale.ROOT) + who.substring(1);
        return subject + " " + what + (detail.isEmpty() ? "" : ": " + detail) + (killed ? "; killed (SIGKILL)" : "");
    }
}
