package io.omai.simulator.cluster;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * Undo steps of a start that may fail half-way, or of a close: {@link #run} undoes what was added, last first; a
 * failing step does not keep the others from running.
 */
final class Cleanup implements Runnable {
    private final Deque<Runnable> steps = new ArrayDeque<>();

    void add(Runnable step) {
        steps.push(step);
    }

    @Override
    public void run() {
        RuntimeException first = null;
        while (!steps.isEmpty()) {
            try {
                steps.pop().run();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
