package io.omai.agent.quota;

import java.util.List;
import java.util.Optional;

/**
 * The processes of the node, as far as the dead-process reaper needs them. {@link LinuxProcessTable} reads
 * {@code /proc}; tests use a fake.
 */
public interface ProcessTable {

    /**
     * The process with this pid in the agent's own pid namespace; empty if there is none.
     *
     * @throws ProcessUnreadableException if it exists but cannot be read (it must then not be taken for dead)
     */
    Optional<ProcStat> read(int pid);

    /**
     * Every process. Slower; used when a slot's pid is in another namespace.
     *
     * @throws ProcessUnreadableException if some existing process cannot be read
     */
    List<ProcStat> all();

    /** Inode of the agent's own pid namespace: slots recorded in it can be checked by pid directly. */
    long ownPidNamespaceInode();
}
