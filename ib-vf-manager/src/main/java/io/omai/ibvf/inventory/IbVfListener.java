package io.omai.ibvf.inventory;

import io.omai.ibvf.error.IbVfException;

/**
 * Told when the set of VFs or the health of any of them changes (a device plugin turns this into a ListAndWatch
 * update). Called on the polling thread; implementations must return quickly.
 */
public interface IbVfListener {

    void onInventoryChanged(InventorySnapshot snapshot);

    /** Discovery failed (for example malformed sysfs); the previous snapshot stays current. */
    default void onDiscoveryFailed(IbVfException failure) {}
}
