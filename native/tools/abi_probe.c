/* Prints the shared-memory layout as the C compiler sees it, one item a line:
 *   size   <struct> <bytes>
 *   field  <struct>.<field> <offset> <bytes>
 *   const  <NAME> <value>
 * agent's ShmLayoutMatchesCHeaderTest compares every line with ShmLayout. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>

#include "omai_shm.h"

#define SIZE(type) printf("size %s %zu\n", #type, sizeof(type))
#define FIELD(type, f) \
    printf("field %s.%s %zu %zu\n", #type, #f, offsetof(type, f), sizeof(((type *)0)->f))
#define CONST(name) printf("const %s %" PRIu64 "\n", #name, (uint64_t)(name))

int main(void) {
    SIZE(omai_control_header);
    FIELD(omai_control_header, magic);
    FIELD(omai_control_header, abi_version);
    FIELD(omai_control_header, header_size);
    FIELD(omai_control_header, device_record_size);
    FIELD(omai_control_header, device_count);
    FIELD(omai_control_header, epoch);
    FIELD(omai_control_header, heartbeat_ns);
    FIELD(omai_control_header, flags);
    FIELD(omai_control_header, compute_period_us);
    FIELD(omai_control_header, created_ns);
    FIELD(omai_control_header, label);

    SIZE(omai_control_device);
    FIELD(omai_control_device, memory_limit_bytes);
    FIELD(omai_control_device, token_grant_ns);
    FIELD(omai_control_device, compute_quota_milli);
    FIELD(omai_control_device, compute_mode);
    FIELD(omai_control_device, host_index);
    FIELD(omai_control_device, launch_cost_ns);
    FIELD(omai_control_device, uuid);

    SIZE(omai_control_file);
    FIELD(omai_control_file, devices);

    SIZE(omai_usage_header);
    FIELD(omai_usage_header, magic);
    FIELD(omai_usage_header, abi_version);
    FIELD(omai_usage_header, header_size);
    FIELD(omai_usage_header, device_record_size);
    FIELD(omai_usage_header, slot_size);
    FIELD(omai_usage_header, device_count);
    FIELD(omai_usage_header, slot_count);
    FIELD(omai_usage_header, devices_offset);
    FIELD(omai_usage_header, slots_offset);
    FIELD(omai_usage_header, reclaimed_slots);
    FIELD(omai_usage_header, reclaimed_bytes);

    SIZE(omai_usage_device);
    FIELD(omai_usage_device, bytes_reserved);
    FIELD(omai_usage_device, bytes_peak);
    FIELD(omai_usage_device, tokens_consumed_ns);
    FIELD(omai_usage_device, launches);
    FIELD(omai_usage_device, denied_allocs);
    FIELD(omai_usage_device, throttled_ns);

    SIZE(omai_usage_slot_device);
    FIELD(omai_usage_slot_device, bytes_in_use);
    FIELD(omai_usage_slot_device, tokens_consumed_ns);
    FIELD(omai_usage_slot_device, launches);
    FIELD(omai_usage_slot_device, denied_allocs);
    FIELD(omai_usage_slot_device, throttled_ns);

    SIZE(omai_usage_slot);
    FIELD(omai_usage_slot, pid);
    FIELD(omai_usage_slot, state);
    FIELD(omai_usage_slot, start_time_ticks);
    FIELD(omai_usage_slot, pid_ns_inode);
    FIELD(omai_usage_slot, host_pid);
    FIELD(omai_usage_slot, attached_ns);
    FIELD(omai_usage_slot, devices);

    SIZE(omai_usage_file);
    FIELD(omai_usage_file, devices);
    FIELD(omai_usage_file, slots);

    CONST(OMAI_ABI_VERSION);
    CONST(OMAI_CONTROL_MAGIC);
    CONST(OMAI_USAGE_MAGIC);
    CONST(OMAI_MAX_DEVICES);
    CONST(OMAI_MAX_SLOTS);
    CONST(OMAI_UUID_LEN);
    CONST(OMAI_LABEL_LEN);
    CONST(OMAI_MEMORY_UNLIMITED);
    CONST(OMAI_DEFAULT_LAUNCH_COST_NS);
    CONST(OMAI_COMPUTE_MODE_HARD_CAP);
    CONST(OMAI_COMPUTE_MODE_WORK_CONSERVING);
    CONST(OMAI_CONTROL_FLAG_COMPUTE_ENFORCED);
    CONST(OMAI_SLOT_FREE);
    CONST(OMAI_SLOT_CLAIMED);
    CONST(OMAI_SLOT_ACTIVE);
    CONST(OMAI_SLOT_RECLAIM);
    CONST(OMAI_USAGE_DEVICES_OFFSET);
    CONST(OMAI_USAGE_SLOTS_OFFSET);
    return 0;
}
