package io.omai.ibvf.guid;

import io.omai.ibvf.model.Guid;
import java.util.Map;

/**
 * Durable record of which GUID each VF was given. The NIC forgets VF GUIDs on every driver reload and reboot; this
 * store is what makes them come back identical, which partitions (pkeys keyed by GUID) depend on.
 */
public interface GuidStore {

    /** The assignments recorded for {@code nodeName}; empty when nothing was ever saved. */
    Map<GuidKey, Guid> load(String nodeName);

    /** Replaces the recorded assignments atomically: a crash leaves either the old or the new set, never a mix. */
    void save(String nodeName, Map<GuidKey, Guid> assignments);
}
