package io.omai.ibvf.error;

/** A GUID could not be assigned: range exhausted, a persisted GUID collides, or the persisted state is unreadable. */
public final class GuidAssignmentException extends IbVfException {

    public GuidAssignmentException(String message) {
        super(message, null);
    }

    public GuidAssignmentException(String message, Throwable cause) {
        super(message, cause);
    }
}
