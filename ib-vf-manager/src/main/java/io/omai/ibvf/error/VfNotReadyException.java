package io.omai.ibvf.error;

/** Virtual functions did not reach the expected state (driver, RDMA device, GUID) within the bounded wait. */
public final class VfNotReadyException extends IbVfException {

    public VfNotReadyException(String message) {
        super(message, null);
    }
}
