package io.omai.agent.quota.shm;

import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Everything the control file of one allocation (one container) says.
 *
 * @param label "namespace/pod/container", shown by {@code inspect} and in logs
 * @param devices one quota per GPU the container holds, at most {@link ShmLayout#MAX_DEVICES}
 * @param computeEnforced whether launches spend compute tokens (false: memory quota only)
 * @param computePeriodUs the controller's grant period, in microseconds
 */
public record AllocationSpec(String label, List<DeviceQuota> devices, boolean computeEnforced, int computePeriodUs) {
    public AllocationSpec {
        if (label == null) {
            label = "";
        }
        if (label.getBytes(StandardCharsets.UTF_8).length >= ShmLayout.LABEL_LEN) {
            throw new IllegalArgumentException(
                    "label '" + label + "' is longer than " + (ShmLayout.LABEL_LEN - 1) + " bytes of UTF-8");
        }
        if (devices == null || devices.isEmpty()) {
            throw new IllegalArgumentException("an allocation needs at least one device");
        }
        if (devices.size() > ShmLayout.MAX_DEVICES) {
            throw new IllegalArgumentException(devices.size() + " devices in one allocation; at most "
                    + ShmLayout.MAX_DEVICES + " fit the control file");
        }
        Set<String> seen = new HashSet<>();
        for (DeviceQuota device : devices) {
            if (!seen.add(device.uuid())) {
                throw new IllegalArgumentException("device " + device.uuid() + " appears twice in one allocation");
            }
        }
        if (computePeriodUs < 1_000 || computePeriodUs > 10_000_000) {
            throw new IllegalArgumentException(
                    "compute period " + computePeriodUs + " us is outside 1000..10000000 us");
        }
        devices = List.copyOf(devices);
    }
}
