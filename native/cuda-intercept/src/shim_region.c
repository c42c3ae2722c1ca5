/*
 * shim_region.c - the shim's side of the shared-memory ABI (omai_shm.h).
 *
 * Control file (read-only): limits under a seqlock on header.epoch. The hot
 * path reads the epoch (acquire), its cached device mapping for that epoch,
 * the one limit it needs, and the epoch again; the UUID matching is redone
 * only when the epoch changed. An epoch that stays odd (agent died mid-write)
 * keeps the last limits seen.
 *
 * Usage file (read-write): one slot per process, claimed by CAS on its pid;
 * container totals per device. Quota check = CAS reserve on
 * devices[d].bytes_reserved that never goes beyond the limit, then the driver
 * call, then commit to the own slot (undo on driver failure). Frees take from
 * the slot first, then from the total. So a crash at any instruction leaves
 * total >= sum of slots: over-counted, never under-counted; the agent fixes
 * it (reclaim of dead slots, resetLeakedTotals when none is live).
 *
 * No locks, no syscalls, no allocation on the hot path. The first use (open,
 * map, validate, claim a slot) does syscalls once per process. Part of the
 * one translation unit shim_unity.c (after shim_ptrtab.c, before shim_mem.c).
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "omai_paths.h"
#include "shim.h"

enum { REGION_UNOPENED = 0, REGION_OPENING = 1, REGION_OK = 2, REGION_FAILED = 3 };
enum { SLOT_NONE = 0, SLOT_CLAIMING = 1, SLOT_HELD = 2, SLOT_UNAVAILABLE = 3, SLOT_CLOSED = 4 };

#define ORD_CACHE 64          /* device ordinals with a cached record mapping */
#define CODE_ABSENT 0x80u     /* cached: ordinal not in the control file */
#define EPOCH_SPINS 256       /* reads of an odd epoch before keeping the last limits */

#if defined(__x86_64__) || defined(__i386__)
#define omai_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define omai_cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define omai_cpu_relax() ((void)0)
#endif

static int region_state;
static const omai_control_file *ctl;
static omai_usage_file *usg;

static int slot_state;
static omai_usage_slot *slot;

/* ord_cache[o] = epoch << 8 | code; code 1..16 = record + 1, CODE_ABSENT. 0 = never. */
static uint64_t ord_cache[ORD_CACHE];
/* Last limit read at a stable epoch, for when the epoch stays odd. */
static uint64_t last_limit[OMAI_MAX_DEVICES];
static uint8_t last_limit_set[OMAI_MAX_DEVICES];

static char fail_reason[320];

/* ----------------------------------------------------------------- opening */

static const char *pick_path(const char *def, const char *env) {
    /* The agent's mount wins over the hint: see omai_paths.h. */
    if (access(def, F_OK) == 0) {
        return def;
    }
    const char *hint = getenv(env);
    return hint && *hint ? hint : def;
}

static void *map_file(const char *what, const char *path, int writable, size_t need) {
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(fail_reason, sizeof fail_reason, "%s file %s: %s", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(fail_reason, sizeof fail_reason, "%s file %s: fstat: %s", what, path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < need) {
        snprintf(fail_reason, sizeof fail_reason,
                 "%s file %s is %lld bytes, expected a regular file of at least %zu bytes", what, path,
                 (long long)st.st_size, need);
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, need, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(fail_reason, sizeof fail_reason, "%s file %s: mmap: %s", what, path, strerror(err));
        return NULL;
    }
    return p;
}

#define EXPECT_FIELD(what, path, field, actual, expected)                                           \
    do {                                                                                           \
        if ((uint64_t)(actual) != (uint64_t)(expected)) {                                          \
            snprintf(fail_reason, sizeof fail_reason, "%s file %s: %s is %llu, expected %llu", what, \
                     path, field, (unsigned long long)(actual), (unsigned long long)(expected));    \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

static bool validate_control(const omai_control_file *c, const char *path) {
    uint64_t magic = __atomic_load_n(&c->header.magic, __ATOMIC_ACQUIRE);
    if (magic != OMAI_CONTROL_MAGIC) {
        snprintf(fail_reason, sizeof fail_reason,
                 "control file %s: magic is 0x%016llx, expected 0x%016llx (\"OMAICTL1\")", path,
                 (unsigned long long)magic, (unsigned long long)OMAI_CONTROL_MAGIC);
        return false;
    }
    EXPECT_FIELD("control", path, "abi_version", c->header.abi_version, OMAI_ABI_VERSION);
    EXPECT_FIELD("control", path, "header_size", c->header.header_size, sizeof(omai_control_header));
    EXPECT_FIELD("control", path, "device_record_size", c->header.device_record_size,
                 sizeof(omai_control_device));
    return true;
}

static bool validate_usage(const omai_usage_file *u, const char *path) {
    uint64_t magic = __atomic_load_n(&u->header.magic, __ATOMIC_ACQUIRE);
    if (magic != OMAI_USAGE_MAGIC) {
        snprintf(fail_reason, sizeof fail_reason,
                 "usage file %s: magic is 0x%016llx, expected 0x%016llx (\"OMAIUSG1\")", path,
                 (unsigned long long)magic, (unsigned long long)OMAI_USAGE_MAGIC);
        return false;
    }
    EXPECT_FIELD("usage", path, "abi_version", u->header.abi_version, OMAI_ABI_VERSION);
    EXPECT_FIELD("usage", path, "header_size", u->header.header_size, sizeof(omai_usage_header));
    EXPECT_FIELD("usage", path, "device_record_size", u->header.device_record_size,
                 sizeof(omai_usage_device));
    EXPECT_FIELD("usage", path, "slot_size", u->header.slot_size, sizeof(omai_usage_slot));
    EXPECT_FIELD("usage", path, "slot_count", u->header.slot_count, OMAI_MAX_SLOTS);
    EXPECT_FIELD("usage", path, "devices_offset", u->header.devices_offset, OMAI_USAGE_DEVICES_OFFSET);
    EXPECT_FIELD("usage", path, "slots_offset", u->header.slots_offset, OMAI_USAGE_SLOTS_OFFSET);
    return true;
}

static bool open_region(void) {
    const char *cpath = pick_path(OMAI_CONTROL_FILE_DEFAULT, OMAI_CONTROL_FILE_ENV);
    const char *upath = pick_path(OMAI_USAGE_FILE_DEFAULT, OMAI_USAGE_FILE_ENV);
    const omai_control_file *c = map_file("control", cpath, 0, sizeof(omai_control_file));
    if (!c) {
        return false;
    }
    if (!validate_control(c, cpath)) {
        munmap((void *)c, sizeof *c);
        return false;
    }
    omai_usage_file *u = map_file("usage", upath, 1, sizeof(omai_usage_file));
    if (!u) {
        munmap((void *)c, sizeof *c);
        return false;
    }
    if (!validate_usage(u, upath)) {
        munmap(u, sizeof *u);
        munmap((void *)c, sizeof *c);
        return false;
    }
    ctl = c;
    usg = u;
    return true;
}

static bool region_slow(void) {
    int expected = REGION_UNOPENED;
    if (__atomic_compare_exchange_n(&region_state, &expected, REGION_OPENING, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        bool ok = open_region();
        if (!ok) {
            omai_log("%s; all device memory allocations will be refused with CUDA_ERROR_OUT_OF_MEMORY "
                     "(fail-closed, see docs/shim.md)",
                     fail_reason);
        }
        __atomic_store_n(&region_state, ok ? REGION_OK : REGION_FAILED, __ATOMIC_RELEASE);
        return ok;
    }
    int s;
    while ((s = __atomic_load_n(&region_state, __ATOMIC_ACQUIRE)) == REGION_OPENING) {
        sched_yield(); /* another thread opens: two open+mmap calls */
    }
    return s == REGION_OK;
}

bool omai_region_ready(void) {
    int s = __atomic_load_n(&region_state, __ATOMIC_ACQUIRE);
    if (OMAI_LIKELY(s == REGION_OK)) {
        return true;
    }
    return s == REGION_UNOPENED || s == REGION_OPENING ? region_slow() : false;
}

/* ------------------------------------------------------------- slot claim */

static uint64_t proc_self_start_ticks(void) {
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    /* Field 2 (comm) may hold spaces and parentheses: count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) {
        return 0;
    }
    p++;
    for (int field = 3; field < 22 && *p; field++) {
        while (*p == ' ') {
            p++;
        }
        while (*p && *p != ' ') {
            p++;
        }
    }
    return strtoull(p, NULL, 10);
}

static uint64_t pid_ns_inode(void) {
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static uint64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* This process's identity, read once per process (again after fork). */
static uint32_t self_pid;
static uint64_t self_start, self_ns;

static omai_usage_slot *claim_slot(void) {
    if (self_pid == 0) {
        self_start = proc_self_start_ticks();
        self_ns = pid_ns_inode();
        self_pid = (uint32_t)getpid();
    }
    if (self_start == 0) {
        /* Without a start time the agent could not tell this process from a
         * dead one and would reclaim its bytes while it runs: refuse instead. */
        static int said;
        if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED)) {
            omai_log("cannot read this process's start time from /proc/self/stat (is /proc mounted?); device "
                     "memory allocations will be refused (fail-closed)");
        }
        return NULL;
    }
    uint32_t pid = self_pid;
    uint64_t start = self_start;
    uint64_t ns = self_ns;
    /* A slot with exactly our identity was claimed by this very process
     * before it exec'd: take it over rather than leak it. Its bytes stay
     * counted (the driver may or may not have let go of that memory at exec;
     * over, never under) until the process exits and the slot is released. */
    for (uint32_t i = 0; i < OMAI_MAX_SLOTS; i++) {
        omai_usage_slot *s = &usg->slots[i];
        uint32_t active = OMAI_SLOT_ACTIVE;
        if (__atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) != pid ||
            __atomic_load_n(&s->start_time_ticks, __ATOMIC_RELAXED) != start ||
            __atomic_load_n(&s->pid_ns_inode, __ATOMIC_RELAXED) != ns ||
            !__atomic_compare_exchange_n(&s->state, &active, OMAI_SLOT_CLAIMED, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_RELAXED)) {
            continue;
        }
        __atomic_store_n(&s->state, OMAI_SLOT_ACTIVE, __ATOMIC_RELEASE);
        return s;
    }
    for (uint32_t i = 0; i < OMAI_MAX_SLOTS; i++) {
        omai_usage_slot *s = &usg->slots[i];
        uint32_t expected = 0;
        if (__atomic_load_n(&s->pid, __ATOMIC_RELAXED) != 0 ||
            !__atomic_compare_exchange_n(&s->pid, &expected, pid, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_RELAXED)) {
            continue;
        }
        __atomic_store_n(&s->state, OMAI_SLOT_CLAIMED, __ATOMIC_RELEASE);
        __atomic_store_n(&s->start_time_ticks, start, __ATOMIC_RELAXED);
        __atomic_store_n(&s->pid_ns_inode, ns, __ATOMIC_RELAXED);
        __atomic_store_n(&s->host_pid, 0u, __ATOMIC_RELAXED);
        __atomic_store_n(&s->attached_ns, realtime_ns(), __ATOMIC_RELAXED);
        for (uint32_t d = 0; d < OMAI_MAX_DEVICES; d++) {
            omai_usage_slot_device *sd = &s->devices[d];
            __atomic_store_n(&sd->bytes_in_use, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&sd->tokens_consumed_ns, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&sd->launches, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&sd->denied_allocs, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&sd->throttled_ns, 0, __ATOMIC_RELAXED);
        }
        __atomic_store_n(&s->state, OMAI_SLOT_ACTIVE, __ATOMIC_RELEASE);
        return s;
    }
    return NULL;
}

__attribute__((noinline)) static omai_usage_slot *own_slot_slow(void) {
    int s = __atomic_load_n(&slot_state, __ATOMIC_ACQUIRE);
    if (s == SLOT_NONE || s == SLOT_UNAVAILABLE) {
        /* None yet, or none was free last time (the agent may have reclaimed
         * one since): a CAS scan of the slots, no syscall after the first. */
        int expected = s;
        if (__atomic_compare_exchange_n(&slot_state, &expected, SLOT_CLAIMING, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            slot = claim_slot();
            if (!slot && s == SLOT_NONE && self_start != 0) {
                omai_log("all %u usage slots of this container are taken; device memory allocations of "
                         "this process will be refused until the agent reclaims dead processes' slots",
                         OMAI_MAX_SLOTS);
            }
            __atomic_store_n(&slot_state, slot ? SLOT_HELD : SLOT_UNAVAILABLE, __ATOMIC_RELEASE);
            return slot;
        }
    }
    while ((s = __atomic_load_n(&slot_state, __ATOMIC_ACQUIRE)) == SLOT_CLAIMING) {
        sched_yield();
    }
    return s == SLOT_HELD ? slot : NULL;
}

/* The own slot, claimed on first need; NULL when none is free (or at exit). */
OMAI_ALWAYS_INLINE static inline omai_usage_slot *own_slot(void) {
    if (OMAI_LIKELY(__atomic_load_n(&slot_state, __ATOMIC_ACQUIRE) == SLOT_HELD)) {
        return slot;
    }
    return own_slot_slow();
}

/* ----------------------------------------------------- limits (seqlocked) */

static bool stable_epoch(uint64_t *out) {
    for (int i = 0; i < EPOCH_SPINS; i++) {
        uint64_t e = __atomic_load_n(&ctl->header.epoch, __ATOMIC_ACQUIRE);
        if (OMAI_LIKELY((e & 1) == 0)) {
            *out = e;
            return true;
        }
        omai_cpu_relax();
    }
    return false;
}

static bool uuid_matches(const omai_control_device *rec, const char *uuid) {
    for (size_t i = 0; i < OMAI_UUID_LEN; i++) {
        char c = __atomic_load_n(&rec->uuid[i], __ATOMIC_RELAXED);
        if (c != uuid[i]) {
            return false;
        }
        if (c == '\0') {
            return true;
        }
    }
    return false;
}

/* Record index of uuid at epoch e: >= 0, -1 absent, -2 epoch moved. */
static int find_uuid_at(const char *uuid, uint64_t e) {
    uint32_t n = __atomic_load_n(&ctl->header.device_count, __ATOMIC_RELAXED);
    int found = -1;
    if (n > OMAI_MAX_DEVICES) {
        n = 0; /* torn or corrupt; the re-check below decides */
    }
    for (uint32_t i = 0; i < n && found < 0; i++) {
        if (uuid_matches(&ctl->devices[i], uuid)) {
            found = (int)i;
        }
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&ctl->header.epoch, __ATOMIC_RELAXED) == e ? found : -2;
}

void omai_format_uuid(const CUuuid *u, char *out, size_t len) {
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, len,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static bool ordinal_uuid(CUdevice ord, char *out, size_t len) {
    CUuuid u;
    CUresult r = CUDA_ERROR_NOT_FOUND;
    if (omai_cu.cuDeviceGetUuid) {
        r = omai_cu.cuDeviceGetUuid(&u, ord);
    } else if (omai_cu.cuDeviceGetUuid_v2) {
        r = omai_cu.cuDeviceGetUuid_v2(&u, ord);
    }
    if (r != CUDA_SUCCESS) {
        return false;
    }
    omai_format_uuid(&u, out, len);
    return true;
}

/* Record index of a device ordinal at epoch e (cached per epoch): >= 0,
 * -1 not in the control file, -2 epoch moved. */
static int record_at(CUdevice ord, uint64_t e) {
    if ((unsigned)ord < ORD_CACHE) {
        uint64_t w = __atomic_load_n(&ord_cache[ord], __ATOMIC_RELAXED);
        if (OMAI_LIKELY(w != 0 && (w >> 8) == e)) {
            unsigned code = (unsigned)(w & 0xff);
            return code == CODE_ABSENT ? -1 : (int)code - 1;
        }
    }
    char uuid[48];
    if (!ordinal_uuid(ord, uuid, sizeof uuid)) {
        return -1;
    }
    int idx = find_uuid_at(uuid, e);
    if (idx >= -1 && (unsigned)ord < ORD_CACHE) {
        unsigned code = idx < 0 ? CODE_ABSENT : (unsigned)idx + 1;
        __atomic_store_n(&ord_cache[ord], e << 8 | code, __ATOMIC_RELAXED);
    }
    return idx;
}

/* The limit of record idx read under epoch e; false if the epoch moved. */
static bool limit_at(int idx, uint64_t e, uint64_t *limit) {
    uint64_t l = __atomic_load_n(&ctl->devices[idx].memory_limit_bytes, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&ctl->header.epoch, __ATOMIC_RELAXED) != e) {
        return false;
    }
    if (OMAI_UNLIKELY(__atomic_load_n(&last_limit[idx], __ATOMIC_RELAXED) != l ||
                      !__atomic_load_n(&last_limit_set[idx], __ATOMIC_RELAXED))) {
        __atomic_store_n(&last_limit[idx], l, __ATOMIC_RELAXED);
        __atomic_store_n(&last_limit_set[idx], 1, __ATOMIC_RELEASE);
    }
    *limit = l;
    return true;
}

/* Record and limit for a key (an ordinal, or a uuid when uuid != NULL). */
static bool lookup(CUdevice ord, const char *uuid, int *idx, uint64_t *limit) {
    *idx = -1;
    if (!omai_region_ready()) {
        return false;
    }
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t e;
        if (!stable_epoch(&e)) {
            break;
        }
        int i = uuid ? find_uuid_at(uuid, e) : record_at(ord, e);
        if (i == -1) {
            *idx = -1;
            return false;
        }
        if (i >= 0 && limit_at(i, e, limit)) {
            *idx = i;
            return true;
        }
    }
    /* The agent is stuck inside an update (odd epoch): keep the last limits. */
    if (!uuid && (unsigned)ord < ORD_CACHE) {
        uint64_t w = __atomic_load_n(&ord_cache[ord], __ATOMIC_RELAXED);
        unsigned code = (unsigned)(w & 0xff);
        if (w != 0 && code != CODE_ABSENT && code >= 1 && code <= OMAI_MAX_DEVICES &&
            __atomic_load_n(&last_limit_set[code - 1], __ATOMIC_ACQUIRE)) {
            *idx = (int)code - 1;
            *limit = __atomic_load_n(&last_limit[code - 1], __ATOMIC_RELAXED);
            return true;
        }
    }
    *idx = -1;
    return false;
}

/* ---------------------------------------------------------- reserve/commit */

static void count_denial(int idx) {
    if (idx < 0 || !usg) {
        return;
    }
    __atomic_fetch_add(&usg->devices[idx].denied_allocs, 1, __ATOMIC_RELAXED);
    omai_usage_slot *s = own_slot();
    if (s) {
        __atomic_fetch_add(&s->devices[idx].denied_allocs, 1, __ATOMIC_RELAXED);
    }
}

/* The hot path of lookup(): this ordinal's record was mapped under the
 * current (even) epoch, so only its limit is read, and the epoch re-checked.
 * Anything else - first use, a new epoch, an odd one - takes lookup(). */
OMAI_ALWAYS_INLINE static inline bool fast_lookup(CUdevice ord, int *idx, uint64_t *limit) {
    if (OMAI_UNLIKELY(__atomic_load_n(&region_state, __ATOMIC_ACQUIRE) != REGION_OK ||
                      (unsigned)ord >= ORD_CACHE)) {
        return false;
    }
    uint64_t e = __atomic_load_n(&ctl->header.epoch, __ATOMIC_ACQUIRE);
    uint64_t w = __atomic_load_n(&ord_cache[ord], __ATOMIC_RELAXED);
    unsigned code = (unsigned)(w & 0xff);
    /* Entries are only ever written under an even epoch, so an odd one never matches. */
    if (OMAI_UNLIKELY((w >> 8) != e || code == 0 || code > OMAI_MAX_DEVICES)) {
        return false;
    }
    uint64_t l = __atomic_load_n(&ctl->devices[code - 1].memory_limit_bytes, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (OMAI_UNLIKELY(__atomic_load_n(&ctl->header.epoch, __ATOMIC_RELAXED) != e)) {
        return false;
    }
    *idx = (int)code - 1;
    *limit = l;
    return true;
}

OMAI_ALWAYS_INLINE static inline CUresult omai_charge_begin(CUdevice ord, uint64_t bytes, omai_charge *c) {
    int idx;
    uint64_t limit;
    if (OMAI_UNLIKELY(!fast_lookup(ord, &idx, &limit)) && !lookup(ord, NULL, &idx, &limit)) {
        count_denial(idx);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (OMAI_UNLIKELY(!own_slot())) {
        count_denial(idx);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (OMAI_UNLIKELY(!omai_ptrtab_has_room())) {
        count_denial(idx);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    omai_usage_device *tot = &usg->devices[idx];
    uint64_t cur = __atomic_load_n(&tot->bytes_reserved, __ATOMIC_RELAXED);
    uint64_t next;
    do {
        /* Never beyond the limit, not even for a moment: a CAS reserve, so a
         * racing process is not refused because of our failed attempt. */
        if (bytes > limit || cur > limit - bytes) {
            count_denial(idx);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        next = cur + bytes;
    } while (!__atomic_compare_exchange_n(&tot->bytes_reserved, &cur, next, true, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    uint64_t peak = __atomic_load_n(&tot->bytes_peak, __ATOMIC_RELAXED);
    while (peak < next && !__atomic_compare_exchange_n(&tot->bytes_peak, &peak, next, true,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    c->dev = idx;
    c->bytes = bytes;
    c->limit = limit;
    return CUDA_SUCCESS;
}

static void omai_charge_cancel(const omai_charge *c) {
    omai_atomic_sat_sub(&usg->devices[c->dev].bytes_reserved, c->bytes);
}

OMAI_ALWAYS_INLINE static inline void omai_charge_commit(const omai_charge *c, int kind, uint64_t key) {
    __atomic_fetch_add(&slot->devices[c->dev].bytes_in_use, c->bytes, __ATOMIC_RELEASE);
    omai_ptrtab_insert(kind, key, c->dev, c->bytes);
}

/* Extra bytes for an allocation already made (a pitch known only afterwards),
 * under the limit the reservation was made with. */
static CUresult omai_charge_grow(omai_charge *c, uint64_t extra) {
    omai_usage_device *tot = &usg->devices[c->dev];
    uint64_t cur = __atomic_load_n(&tot->bytes_reserved, __ATOMIC_RELAXED);
    do {
        if (extra > c->limit || cur > c->limit - extra) {
            count_denial(c->dev);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    } while (!__atomic_compare_exchange_n(&tot->bytes_reserved, &cur, cur + extra, true,
                                          __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    c->bytes += extra;
    return CUDA_SUCCESS;
}

/* Bytes reserved but not used (a pitch smaller than feared). */
static void omai_charge_shrink(omai_charge *c, uint64_t fewer) {
    if (fewer > c->bytes) {
        fewer = c->bytes;
    }
    omai_atomic_sat_sub(&usg->devices[c->dev].bytes_reserved, fewer);
    c->bytes -= fewer;
}

static void omai_release(int dev, uint64_t bytes) {
    omai_usage_slot *s = own_slot();
    if (s) {
        omai_atomic_sat_sub(&s->devices[dev].bytes_in_use, bytes);
    }
    omai_atomic_sat_sub(&usg->devices[dev].bytes_reserved, bytes);
}

/* ------------------------------------------------------------------- views */

bool omai_quota_view(CUdevice ord, const char *uuid, uint64_t *limit, uint64_t *used) {
    int idx;
    if ((uuid || !fast_lookup(ord, &idx, limit)) && !lookup(ord, uuid, &idx, limit)) {
        return false;
    }
    *used = __atomic_load_n(&usg->devices[idx].bytes_reserved, __ATOMIC_ACQUIRE);
    return true;
}

/* --------------------------------------------------------------- lifecycle */

void omai_region_after_fork_child(void) {
    /* The child is a new process: it claims its own slot on first need. The
     * mappings and the per-epoch device cache stay valid; an opening another
     * thread had in progress will never finish here, so start it afresh. */
    slot = NULL;
    self_pid = 0;
    __atomic_store_n(&slot_state, SLOT_NONE, __ATOMIC_RELAXED);
    int opening = REGION_OPENING;
    __atomic_compare_exchange_n(&region_state, &opening, REGION_UNOPENED, false, __ATOMIC_RELAXED,
                                __ATOMIC_RELAXED);
}

void omai_region_at_exit(void) {
    int expected = SLOT_HELD;
    if (!__atomic_compare_exchange_n(&slot_state, &expected, SLOT_CLOSED, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        return;
    }
    omai_usage_slot *s = slot;
    uint32_t state = OMAI_SLOT_ACTIVE;
    if (__atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) != (uint32_t)getpid() ||
        !__atomic_compare_exchange_n(&s->state, &state, OMAI_SLOT_RECLAIM, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        return; /* the agent took it already */
    }
    /* The process ends and the driver frees what it held: give it back, in the
     * agent's own reclaim order (slot, then total). */
    for (uint32_t d = 0; d < OMAI_MAX_DEVICES; d++) {
        uint64_t b = __atomic_exchange_n(&s->devices[d].bytes_in_use, 0, __ATOMIC_ACQ_REL);
        if (b) {
            omai_atomic_sat_sub(&usg->devices[d].bytes_reserved, b);
        }
    }
    __atomic_store_n(&s->start_time_ticks, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pid_ns_inode, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->attached_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->state, OMAI_SLOT_FREE, __ATOMIC_RELEASE);
    __atomic_store_n(&s->pid, 0u, __ATOMIC_RELEASE);
}
