package io.omai.ibvf.error;

/** A per-VF QoS setting was requested on a link layer that cannot enforce it; never silently ignored. */
public final class QosUnsupportedException extends IbVfException {

    public QosUnsupportedException(String message) {
        super(message, null);
    }
}
