package io.omai.extender.cache;

import io.omai.agent.schedapi.v1.NodeState;
import java.util.Objects;

/**
 * A node's state as its agent last sent it.
 *
 * @param receivedNanos {@link System#nanoTime()} when it arrived
 */
public record CachedNode(NodeState state, long receivedNanos) {
    public CachedNode {
        Objects.requireNonNull(state, "state");
    }
}
