/*
 * omai_shm.h - the shared-memory ABI between the OMAI agent (controller) and
 * the CUDA shim (enforcer). This header is the single source of truth for the
 * layout: the Java side (agent/.../quota/shm/ShmLayout.java) is checked against
 * it by a probe compiled from this file (see docs/abi.md).
 *
 * Two files per allocation (one container):
 *
 *   control  written by the agent only; mounted read-only in the container.
 *            Limits, quotas, mode, the compute-token grant, the heartbeat.
 *   usage    written by the shim (and by the agent when it reclaims the slot
 *            of a dead process). Per-process slots and per-device totals.
 *
 * Rules: fixed-width little-endian fields at explicit offsets; every 64-bit
 * field 8-byte aligned so it can be used atomically from C (__atomic) and Java
 * (VarHandle on a MemorySegment); no pointers, size_t, sem_t or locks. All
 * cross-process coordination is by atomic loads/stores/CAS/fetch-add.
 */
#ifndef OMAI_SHM_H
#define OMAI_SHM_H

#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the OMAI shared-memory ABI is little-endian"
#endif

#define OMAI_ABI_VERSION 1u

/* "OMAICTL1" and "OMAIUSG1" read as little-endian u64. */
#define OMAI_CONTROL_MAGIC 0x314C544349414D4FULL
#define OMAI_USAGE_MAGIC   0x3147535549414D4FULL

#define OMAI_MAX_DEVICES 16u
#define OMAI_MAX_SLOTS   128u
#define OMAI_UUID_LEN    64u
#define OMAI_LABEL_LEN   128u

/* launch_cost_ns the shim charges while the agent has no estimate yet. */
#define OMAI_DEFAULT_LAUNCH_COST_NS 100000ull

/* memory_limit_bytes value meaning "no memory limit on this device". */
#define OMAI_MEMORY_UNLIMITED UINT64_MAX

/* omai_control_device.compute_mode */
#define OMAI_COMPUTE_MODE_HARD_CAP        1u /* never above the quota */
#define OMAI_COMPUTE_MODE_WORK_CONSERVING 2u /* may borrow idle GPU time */

/* omai_control_header.flags */
#define OMAI_CONTROL_FLAG_COMPUTE_ENFORCED 0x1u /* launches spend tokens */

/* omai_usage_slot.state */
#define OMAI_SLOT_FREE     0u /* pid == 0, nothing recorded */
#define OMAI_SLOT_CLAIMED  1u /* pid CAS-claimed, identity being written */
#define OMAI_SLOT_ACTIVE   2u /* identity published; counters live */
#define OMAI_SLOT_RECLAIM  3u /* agent is releasing a dead process's bytes */

/* ------------------------------------------------------------------ control */

typedef struct omai_control_header {
    uint64_t magic;              /*   0 OMAI_CONTROL_MAGIC */
    uint32_t abi_version;        /*   8 OMAI_ABI_VERSION */
    uint32_t header_size;        /*  12 sizeof(omai_control_header) */
    uint32_t device_record_size; /*  16 sizeof(omai_control_device) */
    uint32_t device_count;       /*  20 valid records, <= OMAI_MAX_DEVICES */
    uint64_t epoch;              /*  24 seqlock: odd while the agent writes limits */
    uint64_t heartbeat_ns;       /*  32 agent's CLOCK_MONOTONIC at its last tick */
    uint32_t flags;              /*  40 OMAI_CONTROL_FLAG_* */
    uint32_t compute_period_us;  /*  44 the controller's grant period */
    uint64_t created_ns;         /*  48 CLOCK_REALTIME when the agent created the file */
    uint64_t reserved0;          /*  56 zero */
    char label[OMAI_LABEL_LEN];  /*  64 "namespace/pod/container", NUL-padded (informational) */
} omai_control_header;           /* 192 */

typedef struct omai_control_device {
    uint64_t memory_limit_bytes;  /*  0 OMAI_MEMORY_UNLIMITED or a byte limit */
    uint64_t token_grant_ns;      /*  8 monotonic cumulative GPU-time grant (ns) */
    uint32_t compute_quota_milli; /* 16 share of this GPU, 1..1000 */
    uint32_t compute_mode;        /* 20 OMAI_COMPUTE_MODE_* */
    uint32_t host_index;          /* 24 NVML index on the host (informational) */
    uint32_t reserved0;           /* 28 zero */
    uint64_t launch_cost_ns;      /* 32 agent's estimate of GPU time one launch costs; the shim
                                   *    charges it per launch (0: OMAI_DEFAULT_LAUNCH_COST_NS) */
    uint64_t reserved1;           /* 40 zero */
    uint64_t reserved2;           /* 48 zero */
    uint64_t reserved3;           /* 56 zero */
    char uuid[OMAI_UUID_LEN];     /* 64 "GPU-...", NUL-padded; the shim matches devices by it */
} omai_control_device;            /* 128 */

typedef struct omai_control_file {
    omai_control_header header;
    omai_control_device devices[OMAI_MAX_DEVICES];
} omai_control_file;

/* -------------------------------------------------------------------- usage */

typedef struct omai_usage_header {
    uint64_t magic;              /*  0 OMAI_USAGE_MAGIC */
    uint32_t abi_version;        /*  8 OMAI_ABI_VERSION */
    uint32_t header_size;        /* 12 sizeof(omai_usage_header) */
    uint32_t device_record_size; /* 16 sizeof(omai_usage_device) */
    uint32_t slot_size;          /* 20 sizeof(omai_usage_slot) */
    uint32_t device_count;       /* 24 same as the control file's */
    uint32_t slot_count;         /* 28 OMAI_MAX_SLOTS */
    uint32_t devices_offset;     /* 32 offset of devices[] */
    uint32_t slots_offset;       /* 36 offset of slots[] */
    uint64_t reclaimed_slots;    /* 40 agent: slots of dead processes released */
    uint64_t reclaimed_bytes;    /* 48 agent: bytes released with them */
    uint64_t reserved0;          /* 56 zero */
} omai_usage_header;             /* 64 */

/* Container-wide totals per device; the quota is checked against these by
 * reserve-then-commit (fetch_add, undo on failure). */
typedef struct omai_usage_device {
    uint64_t bytes_reserved;     /*  0 bytes held by all processes (atomic add/sub) */
    uint64_t bytes_peak;         /*  8 high-water mark of bytes_reserved (CAS max) */
    uint64_t tokens_consumed_ns; /* 16 GPU time spent by launches (atomic add) */
    uint64_t launches;           /* 24 kernel launches (atomic add) */
    uint64_t denied_allocs;      /* 32 allocations refused by the quota */
    uint64_t throttled_ns;       /* 40 time launches waited for tokens */
    uint64_t reserved0;          /* 48 zero */
    uint64_t reserved1;          /* 56 zero */
} omai_usage_device;             /* 64 */

/* Per process and device; written only by the owning process (the agent
 * writes it only while the slot is in OMAI_SLOT_RECLAIM). */
typedef struct omai_usage_slot_device {
    uint64_t bytes_in_use;       /*  0 */
    uint64_t tokens_consumed_ns; /*  8 */
    uint64_t launches;           /* 16 */
    uint64_t denied_allocs;      /* 24 */
    uint64_t throttled_ns;       /* 32 */
    uint64_t reserved0;          /* 40 */
} omai_usage_slot_device;        /* 48 */

typedef struct omai_usage_slot {
    uint32_t pid;                /*  0 pid in the process's own namespace; CAS 0 -> pid claims */
    uint32_t state;              /*  4 OMAI_SLOT_* */
    uint64_t start_time_ticks;   /*  8 /proc/<pid>/stat field 22 (boot-relative, ns-independent) */
    uint64_t pid_ns_inode;       /* 16 inode of /proc/self/ns/pid, 0 if unknown */
    uint32_t host_pid;           /* 24 filled by the agent once mapped, 0 if unknown */
    uint32_t reserved0;          /* 28 zero */
    uint64_t attached_ns;        /* 32 CLOCK_REALTIME when the slot was claimed */
    uint64_t reserved1;          /* 40 */
    uint64_t reserved2;          /* 48 */
    uint64_t reserved3;          /* 56 */
    omai_usage_slot_device devices[OMAI_MAX_DEVICES]; /* 64 */
} omai_usage_slot;               /* 832 */

typedef struct omai_usage_file {
    omai_usage_header header;
    omai_usage_device devices[OMAI_MAX_DEVICES];
    omai_usage_slot slots[OMAI_MAX_SLOTS];
} omai_usage_file;

/* The layout is part of the ABI: any change here is a new OMAI_ABI_VERSION. */
_Static_assert(sizeof(omai_control_header) == 192, "control header size");
_Static_assert(sizeof(omai_control_device) == 128, "control device size");
_Static_assert(sizeof(omai_control_file) == 192 + 16 * 128, "control file size");
_Static_assert(sizeof(omai_usage_header) == 64, "usage header size");
_Static_assert(sizeof(omai_usage_device) == 64, "usage device size");
_Static_assert(sizeof(omai_usage_slot_device) == 48, "usage slot device size");
_Static_assert(sizeof(omai_usage_slot) == 64 + 16 * 48, "usage slot size");
_Static_assert(sizeof(omai_usage_file) == 64 + 16 * 64 + 128 * 832, "usage file size");

#define OMAI_USAGE_DEVICES_OFFSET ((uint32_t)sizeof(omai_usage_header))
#define OMAI_USAGE_SLOTS_OFFSET \
    ((uint32_t)(sizeof(omai_usage_header) + OMAI_MAX_DEVICES * sizeof(omai_usage_device)))

#endif /* OMAI_SHM_H */
