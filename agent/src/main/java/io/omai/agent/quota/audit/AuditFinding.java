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
 */
public record AuditFinding(Reason reason, String gpuUuid, int hostPid, String command, long usedBytes,
                           long limitBytes, String namespace, String pod, String podUid, String allocationId,
                           boolean killed) {
    /** What was wrong. */
    public enum Reason {
        /** The process uses the GPU but holds no slot in any allocation's usage file: the shim is not loaded. */
        NO_SHIM,
        /** NVML sees more memory in use than its allocation's quota (beyond the driver's own context memory). */
        MEMORY_OVER_QUOTA
    }

    /** One line for logs and events. */
    public String describe() {
        String who = namespace.isEmpty() ? "a process of no allocation" : "pod " + namespace + "/" + pod;
        String what = switch (reason) {
            case NO_SHIM -> "runs on shared GPU " + gpuUuid + " without the OMAI shim";
            case MEMORY_OVER_QUOTA -> "holds " + usedBytes + " bytes on GPU " + gpuUuid + ", above its quota of "
                    + limitBytes + " bytes (allocation " + allocationId + ")";
        };
        return "process " + hostPid + (command.isEmpty() ? "" : " (" + command + ")") + " of " + who + " " + what
                + (killed ? "; killed (SIGKILL)" : "");
    }
}
