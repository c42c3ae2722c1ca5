package io.omai.agent.schedapi;

import io.omai.agent.schedapi.v1.NodeState;
import io.omai.agent.tenancy.ReservationBook;
import io.omai.agent.tenancy.Subscription;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the published {@link NodeState}: devices and allocations from the inventory plus the reservation book,
 * under one generation that grows on every change of either. Observers get each new state on the thread that
 * made the change; they must not block (watch streams coalesce, see {@link NodeStateWatch}).
 */
public final class NodeStatePublisher implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NodeStatePublisher.class);

    private final NodeInventory inventory;
    private final String tenantLabel;
    private final ReservationBook book;
    private final String incarnation = UUID.randomUUID().toString();
    private final Object lock = new Object();
    // @GuardedBy("lock")
    private final Set<Observer> observers = Collections.newSetFromMap(new IdentityHashMap<>());
    // @GuardedBy("lock") for writes; volatile for lock-free reads
    private volatile NodeState current;
    private final List<Subscription> subscriptions;

    public NodeStatePublisher(NodeInventory inventory, ReservationBook book) {
        this(inventory, book, "");
    }

    /** @param tenantLabel the pod label the agent reads tenants from; "" when the namespace is the tenant */
    public NodeStatePublisher(NodeInventory inventory, ReservationBook book, String tenantLabel) {
        this.inventory = inventory;
        this.book = book;
        this.tenantLabel = tenantLabel;
        synchronized (lock) {
            current = build(1);
        }
        this.subscriptions = List.of(inventory.onChange(this::refresh), book.onChange(this::refresh));
    }

    public NodeState current() {
        return current;
    }

    public String incarnation() {
        return incarnation;
    }

    /** Rebuilds the state under the next generation and hands it to every observer. */
    public void refresh() {
        NodeState next;
        List<Observer> targets;
        synchronized (lock) {
            next = build(current.getGeneration() + 1);
            current = next;
            targets = List.copyOf(observers);
        }
        for (Observer observer : targets) {
            try {
                observer.accept(next);
            } catch (RuntimeException e) {
                log.warn("node state observer {} failed", observer, e);
            }
        }
    }

    /**
     * Registers {@code observer} and returns the state current at that moment; every later state goes to the
     * observer, so nothing between the two is missed.
     */
    public NodeState observe(Observer observer) {
        synchronized (lock) {
            observers.add(observer);
            return current;
        }
    }

    public void stopObserving(Observer observer) {
        synchronized (lock) {
            observers.remove(observer);
        }
    }

    int observerCount() {
        synchronized (lock) {
            return observers.size();
        }
    }

    private NodeState build(long generation) {
        return ProtoMapping.nodeState(
                inventory.snapshot(), book.outstanding(), book.policy(), generation, incarnation, tenantLabel);
    }

    /** Stops following the sources and ends every observer (watch streams complete). */
    @Override
    public void close() {
        subscriptions.forEach(Subscription::close);
        List<Observer> ending;
        synchronized (lock) {
            ending = List.copyOf(observers);
            observers.clear();
        }
        ending.forEach(Observer::end);
    }

    /** Receives every new state; must not block. */
    public interface Observer extends Consumer<NodeState> {
        /** No more states will come (the server is stopping). */
        default void end() {}
    }
}
