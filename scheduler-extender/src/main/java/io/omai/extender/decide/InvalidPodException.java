package io.omai.extender.decide;

/** A pod whose OMAI requests cannot be understood: no node can take it, so no node is tried. */
public final class InvalidPodException extends Exception {
    public InvalidPodException(String message) {
        super(message);
    }
}
