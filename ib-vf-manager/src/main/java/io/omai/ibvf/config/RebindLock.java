package io.omai.ibvf.config;

/**
 * Serialises everything that unbinds/binds a VF node-wide. Concurrent rebinds reshuffle {@code uverbsN} numbers
 * between VFs, so the agent, and any CNI that rebinds, must take turns.
 */
public interface RebindLock {

    void runExclusively(Runnable rebind);
}
