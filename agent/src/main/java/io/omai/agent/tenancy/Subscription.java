package io.omai.agent.tenancy;

/** A registered change listener; closing it unregisters the listener. Closing twice is harmless. */
@FunctionalInterface
public interface Subscription extends AutoCloseable {
    @Override
    void close();
}
