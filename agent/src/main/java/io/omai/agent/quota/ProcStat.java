package io.omai.agent.quota;

/**
 * What the agent needs to know about one process to tell whether a usage slot still belongs to it.
 *
 * @param pid the pid as the agent sees it (the host pid when the agent runs with hostPID)
 * @param nsPid the pid in the process's own (innermost) pid namespace: the last NSpid of /proc/pid/status, which is
 *     what the shim writes into its slot; -1 if status could not be read
 * @param pidNsInode inode of /proc/pid/ns/pid, the namespace the shim records; 0 if the link could not be read
 * @param startTimeTicks field 22 of /proc/pid/stat (clock ticks after boot), which tells a reused pid apart
 * @param zombie state Z: the process has exited (its GPU memory is gone) but is not reaped yet
 */
public record ProcStat(int pid, int nsPid, long pidNsInode, long startTimeTicks, boolean zombie) {

    /**
     * True when this may be the live process a shim slot with this identity was claimed by. Unknown fields (on
     * either side) match: a slot is only reclaimed when no process can be its owner.
     */
    public boolean isLive(long slotPidNsInode, int slotPid, long slotStartTicks) {
        return !zombie
                && startTimeTicks == slotStartTicks
                && (nsPid < 0 || nsPid == slotPid)
                && (slotPidNsInode == 0 || pidNsInode == 0 || pidNsInode == slotPidNsInode);
    }
}
