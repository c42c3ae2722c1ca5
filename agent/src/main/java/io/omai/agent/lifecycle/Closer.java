package io.omai.agent.lifecycle;

import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a component started, in the order it started, closed newest first: the way back from a failed start and
 * the component's stop are one list, so they cannot disagree. A close that fails is logged with its stack trace
 * ({@code event=stop_failed}) and the next resource still gets its turn; one broken part never keeps the rest open.
 */
public final class Closer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Closer.class);

    private record Named(String name, AutoCloseable resource) {}

    private final String owner;
    private final List<Named> started = new ArrayList<>();

    /** @param owner names the component in the log lines of failed closes */
    public Closer(String owner) {
        this.owner = owner;
    }

    /** Records {@code resource} as started now; it is closed before everything recorded earlier. */
    public synchronized <T extends AutoCloseable> T add(String name, T resource) {
        started.add(new Named(name, resource));
        return resource;
    }

    /**
     * Closes every recorded resource, newest first, and forgets them (a second call closes nothing).
     *
     * @return the failures, in the order they happened; each is already logged
     */
    public List<Exception> closeAll() {
        List<Named> stopOrder;
        synchronized (this) {
            stopOrder = new ArrayList<>(started).reversed();
            started.clear();
        }
        List<Exception> failures = new ArrayList<>();
        for (Named named : stopOrder) {
            try {
                named.resource().close();
            } catch (Exception e) {
                failures.add(e);
                log.warn("event=stop_failed owner={} resource={}", owner, named.name(), e);
            }
        }
        return failures;
    }

    @Override
    public void close() {
        closeAll();
    }
}
