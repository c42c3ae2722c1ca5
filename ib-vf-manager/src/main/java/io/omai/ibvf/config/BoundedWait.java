package io.omai.ibvf.config;

import io.omai.ibvf.error.VfNotReadyException;
import java.util.Optional;
import java.util.function.Supplier;

/** Polls a readiness check a bounded number of times; the check returns why it is not ready yet, or empty. */
public final class BoundedWait {

    private final ReadinessPolicy policy;
    private final Sleeper sleeper;

    public BoundedWait(ReadinessPolicy policy, Sleeper sleeper) {
        this.policy = policy;
        this.sleeper = sleeper;
    }

    public void until(String what, Supplier<Optional<String>> notReadyReason) {
        Optional<String> reason = notReadyReason.get();
        for (int attempt = 1; reason.isPresent() && attempt < policy.attempts(); attempt++) {
            try {
                sleeper.sleep(policy.interval());
            } catch (InterruptedException interrupted) {
                Thread.currentThread().interrupt();
                throw new VfNotReadyException(what + ": interrupted while waiting; last seen: " + reason.get());
            }
            reason = notReadyReason.get();
        }
        if (reason.isPresent()) {
            throw new VfNotReadyException(what + ": still not ready after " + policy.attempts() + " checks over "
                    + policy.total() + ": " + reason.get());
        }
    }
}
