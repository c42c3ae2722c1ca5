package io.omai.agent.lifecycle;

import java.util.Collection;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps one subject's failure (one allocation's files) from ending a loop's pass for the others. A fault in a
 * mapping of a file a container truncated surfaces as {@link InternalError} ("a fault occurred in an unsafe
 * memory access"); it is caught here with every {@link RuntimeException}, the subject is marked failing (logged
 * once, and again when it recovers) and the pass moves on to the next subject.
 */
public final class IsolatedFailures {
    private static final Logger log = LoggerFactory.getLogger(IsolatedFailures.class);

    private final String loop;
    private final Map<String, String> failing = new ConcurrentHashMap<>();

    public IsolatedFailures(String loop) {
        this.loop = loop;
    }

    /** Runs {@code action} for {@code subject}; false when it failed (logged, subject marked). */
    public boolean run(String subject, Runnable action) {
        try {
            action.run();
        } catch (RuntimeException | InternalError e) {
            String text = e.toString();
            if (!text.equals(failing.put(subject, text))) {
                log.warn("event=loop_subject_failed loop={} subject={} error=\"{}\"", loop, subject, text);
            }
            return false;
        }
        if (failing.remove(subject) != null) {
            log.info("event=loop_subject_recovered loop={} subject={}", loop, subject);
        }
        return true;
    }

    /** Subjects whose last action failed, with the error. */
    public Map<String, String> failing() {
        return Map.copyOf(failing);
    }

    /** Forgets subjects that are gone. */
    public void retain(Collection<String> subjects) {
        failing.keySet().retainAll(subjects);
    }
}
