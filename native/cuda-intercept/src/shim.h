/*
 * shim.h - internals of the OMAI CUDA/NVML shim (libomai-shim.so).
 *
 * Layout of the sources:
 *   shim_init.c    one-time set-up: real dlsym, real driver tables, fork handling
 *   shim_lookup.c  the dlsym override and cuGetProcAddress(_v2)
 *   shim_region.c  control/usage files: seqlocked limits, slot claim, reserve/commit
 *   shim_ptrtab.c  lock-free table of live allocations (key -> bytes, device)
 *   shim_mem.c     the CUDA memory wrappers and memory views
 *   shim_launch.c  the launch wrappers: compute tokens spent per launch
 *   shim_nvml.c    the NVML memory views
 */
#ifndef OMAI_SHIM_H
#define OMAI_SHIM_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "omai_cuda.h"
#include "omai_nvml.h"
#include "omai_shm.h"

#define OMAI_HIDDEN __attribute__((visibility("hidden")))
#define OMAI_ALWAYS_INLINE __attribute__((always_inline))
#define OMAI_LIKELY(x) __builtin_expect(!!(x), 1)
#define OMAI_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Wrappers and exports: default visibility, declared from the one list. */
#define OMAI_HOOK_CU(name, family) extern __typeof__(name) name __attribute__((visibility("default")));
#define OMAI_HOOK_NVML(name) extern __typeof__(name) name __attribute__((visibility("default")));
#include "hooks.def"

unsigned omai_shim_abi_version(void) __attribute__((visibility("default")));
void *dlsym(void *handle, const char *symbol) __attribute__((visibility("default")));

/* ------------------------------------------------------------ real tables */

typedef struct omai_real_cuda {
#define OMAI_HOOK_CU(name, family) __typeof__(&name) name;
#define OMAI_DENY_CU(name, family) void *name;
#define OMAI_REAL_CU(name) __typeof__(&name) name;
#include "hooks.def"
} omai_real_cuda;

typedef struct omai_real_nvml {
#define OMAI_HOOK_NVML(name) __typeof__(&name) name;
#define OMAI_REAL_NVML(name) __typeof__(&name) name;
#include "hooks.def"
} omai_real_nvml;

/* Filled once (omai_cuda_ready / omai_nvml_ready), read-only afterwards. */
extern omai_real_cuda omai_cu OMAI_HIDDEN;
extern omai_real_nvml omai_nv OMAI_HIDDEN;

typedef void *(*omai_dlsym_fn)(void *, const char *);
extern omai_dlsym_fn omai_real_dlsym OMAI_HIDDEN;

/* True once the CUDA table is resolved (acquire load: one load on the hot
 * path). The slow path dlopens libcuda.so.1 if load_if_absent. */
bool omai_cuda_resolve_slow(bool load_if_absent) OMAI_HIDDEN;
extern int omai_cuda_state OMAI_HIDDEN; /* 0 unresolved, 1 resolving, 2 resolved, 3 no library */
static inline bool omai_cuda_ready(void) {
    return OMAI_LIKELY(__atomic_load_n(&omai_cuda_state, __ATOMIC_ACQUIRE) == 2) ||
           omai_cuda_resolve_slow(true);
}
bool omai_nvml_ready(void) OMAI_HIDDEN;

/* Maps a pointer the real driver handed out to our wrapper for exactly that
 * entry point; returns p unchanged when it is not one we wrap. */
void *omai_wrap_cuda_pointer(void *p) OMAI_HIDDEN;
void *omai_wrap_nvml_pointer(void *p) OMAI_HIDDEN;
/* By the exported name dladdr gives p (same libcuda only); NULL if none. */
void *omai_wrap_cuda_by_name(void *p) OMAI_HIDDEN;
/* True when name is the name or the family (unversioned name) of an entry
 * point we wrap: an unknown pointer under such a name must not be handed out. */
bool omai_is_guarded_name(const char *name) OMAI_HIDDEN;
bool omai_is_cuda_wrapper(const void *p) OMAI_HIDDEN;
void omai_resolve_real_dlsym(void) OMAI_HIDDEN;
/* Nonzero while this thread resolves a driver table (its lookups pass through). */
extern __thread int omai_resolving_here OMAI_HIDDEN;

/* One line on stderr, "omai-shim: ...". Cold paths only. */
void omai_log(const char *fmt, ...) __attribute__((format(printf, 1, 2))) OMAI_HIDDEN;

/* ----------------------------------------------------------------- region */

/* Opens and validates the control and usage files on first use (one stderr
 * line if unusable); false = fail-closed: device allocations are refused. */
bool omai_region_ready(void) OMAI_HIDDEN;

/* A reservation against one device's quota. */
typedef struct omai_charge {
    int dev;        /* control/usage record index */
    uint64_t bytes; /* reserved */
    uint64_t limit; /* the limit it was reserved under */
} omai_charge;

/* The accounting steps (omai_charge_begin/commit/cancel, omai_release,
 * the allocation table) are static functions of shim_region.c and
 * shim_ptrtab.c, inlined into the wrappers: the shim is built as one
 * translation unit (shim_unity.c). */

/* The quota view of a device (by ordinal, or by uuid when uuid != NULL):
 * its limit (maybe OMAI_MEMORY_UNLIMITED) and the container's bytes_reserved.
 * False when fail-closed or the device is not in the control file. */
bool omai_quota_view(CUdevice ord, const char *uuid, uint64_t *limit, uint64_t *used) OMAI_HIDDEN;

/* The virtualised view: free/total as cuMemGetInfo reports them, and the
 * container's used bytes (0/0/0 when fail-closed or the device is unknown). */
enum { OMAI_VIEW_NONE = 0, OMAI_VIEW_QUOTA = 1, OMAI_VIEW_CARD = 2 };
int omai_quota_view_of(CUdevice ord, const char *uuid, uint64_t real_free, uint64_t real_total,
                       uint64_t *free_out, uint64_t *total_out, uint64_t *used_out) OMAI_HIDDEN;

void omai_region_after_fork_child(void) OMAI_HIDDEN;
void omai_region_at_exit(void) OMAI_HIDDEN;

/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" from 16 raw bytes (len >= 41). */
void omai_format_uuid(const CUuuid *uuid, char *out, size_t len) OMAI_HIDDEN;

/* --------------------------------------------------------------- ptrtab */

typedef enum omai_alloc_kind {
    OMAI_KIND_DEVPTR = 0, /* cuMemAlloc*, managed, async/pool */
    OMAI_KIND_VMM = 1,    /* cuMemCreate handle */
    OMAI_KIND_ARRAY = 2,  /* CUarray */
    OMAI_KIND_MIPMAP = 3, /* CUmipmappedArray */
} omai_alloc_kind;

/* shim_ptrtab.c: has_room, insert, take (static; see above). */
void omai_ptrtab_after_fork_child(void) OMAI_HIDDEN;

/* ------------------------------------------------------------ arithmetic */

static inline uint64_t omai_sat_add(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}
static inline uint64_t omai_sat_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}
static inline uint64_t omai_sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

/* *p -= v, stopping at 0 (CAS loop). */
static inline void omai_atomic_sat_sub(uint64_t *p, uint64_t v) {
    uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &cur, omai_sat_sub(cur, v), true, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
    }
}

#endif /* OMAI_SHIM_H */
