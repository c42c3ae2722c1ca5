/*
 * shim_ptrtab.c - what each live allocation took, so its free gives exactly
 * that back.
 *
 * Open addressing, linear probing, one preallocated table per process (mapped
 * once, on the first accounted allocation; never grown, never malloc'ed).
 * Lock-free: an entry is claimed by CAS on its key (EMPTY or TOMBSTONE -> key)
 * and removed by CAS (key -> TOMBSTONE), so two threads freeing one pointer
 * release its bytes once. Allocations are refused BEFORE the driver call
 * once 7/8 of the table is live, so every probe ends and an insert after a
 * successful allocation cannot fail. (Part of the one translation unit
 * shim_unity.c: its static functions are used by shim_region.c/shim_mem.c.)
 *
 * Keys of different kinds (device pointers, VMM handles, array handles) are
 * kept apart by XOR with a per-kind constant.
 */
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

#define PT_BITS 17u
#define PT_SIZE (1u << PT_BITS)
#define PT_MASK (PT_SIZE - 1u)
#define PT_MAX_LIVE (PT_SIZE - PT_SIZE / 8u)

#define K_EMPTY 0ull
#define K_TOMB 1ull

typedef struct entry {
    uint64_t key;
    uint64_t bytes;
    uint32_t dev;
    uint32_t reserved;
} entry;

static entry *tab;
static int tab_state; /* 0 none, 1 mapping, 2 mapped, 3 failed */
static uint64_t live; /* entries present */

static const uint64_t salt[4] = {
    0x0ull,                  /* device pointers as they are */
    0xA5A5000000000000ull,   /* VMM handles */
    0x5A5A000000000000ull,   /* CUarray */
    0xC3C3000000000000ull,   /* CUmipmappedArray */
};

static uint64_t stored_key(int kind, uint64_t key) {
    uint64_t k = key ^ salt[kind & 3];
    return k < 2 ? k | 0x8000000000000000ull : k;
}

static uint32_t home(uint64_t k) { return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> (64 - PT_BITS)); }

static bool table_ready(void) {
    int s = __atomic_load_n(&tab_state, __ATOMIC_ACQUIRE);
    if (OMAI_LIKELY(s == 2)) {
        return true;
    }
    if (s == 0) {
        int expected = 0;
        if (__atomic_compare_exchange_n(&tab_state, &expected, 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            void *p = mmap(NULL, sizeof(entry) * PT_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED) {
                omai_log("cannot map the allocation table (%zu bytes); device memory allocations will be "
                         "refused", sizeof(entry) * PT_SIZE);
                __atomic_store_n(&tab_state, 3, __ATOMIC_RELEASE);
                return false;
            }
            tab = p;
            __atomic_store_n(&tab_state, 2, __ATOMIC_RELEASE);
            return true;
        }
    }
    while ((s = __atomic_load_n(&tab_state, __ATOMIC_ACQUIRE)) == 1) {
        sched_yield(); /* another thread maps the table: one mmap */
    }
    return s == 2;
}

/* Room for one more entry? Checked before the driver call (a relaxed load:
 * threads racing past it can overfill by at most their number, far less
 * than the eighth of the table kept empty). */
OMAI_ALWAYS_INLINE static inline bool omai_ptrtab_has_room(void) {
    if (OMAI_UNLIKELY(__atomic_load_n(&tab_state, __ATOMIC_ACQUIRE) != 2) && !table_ready()) {
        return false;
    }
    if (OMAI_UNLIKELY(__atomic_load_n(&live, __ATOMIC_RELAXED) >= PT_MAX_LIVE)) {
        static int said;
        if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED)) {
            omai_log("%u live device allocations in this process: the allocation table is full; further "
                     "allocations are refused until some are freed", PT_MAX_LIVE);
        }
        return false;
    }
    return true;
}

static void omai_release(int dev, uint64_t bytes);

static void omai_ptrtab_insert(int kind, uint64_t key, int dev, uint64_t bytes) {
    uint64_t k = stored_key(kind, key);
    for (;;) {
        uint32_t i = home(k);
        uint32_t tomb = PT_SIZE;
        for (uint32_t n = 0; n < PT_SIZE; n++, i = (i + 1) & PT_MASK) {
            uint64_t cur = __atomic_load_n(&tab[i].key, __ATOMIC_ACQUIRE);
            if (cur == k) {
                /* The driver handed this address out again, so the old one was
                 * freed behind our back (e.g. by destroying its context). */
                uint32_t old_dev = __atomic_load_n(&tab[i].dev, __ATOMIC_RELAXED);
                uint64_t old_bytes = __atomic_exchange_n(&tab[i].bytes, bytes, __ATOMIC_RELAXED);
                __atomic_store_n(&tab[i].dev, (uint32_t)dev, __ATOMIC_RELAXED);
                omai_release((int)old_dev, old_bytes);
                return;
            }
            if (cur == K_TOMB && tomb == PT_SIZE) {
                tomb = i;
            }
            if (cur == K_EMPTY) {
                uint32_t at = tomb != PT_SIZE ? tomb : i;
                uint64_t expected = at == i ? K_EMPTY : K_TOMB;
                if (__atomic_compare_exchange_n(&tab[at].key, &expected, k, false, __ATOMIC_ACQ_REL,
                                                __ATOMIC_RELAXED)) {
                    __atomic_store_n(&tab[at].bytes, bytes, __ATOMIC_RELAXED);
                    __atomic_store_n(&tab[at].dev, (uint32_t)dev, __ATOMIC_RELEASE);
                    __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
                    return;
                }
                break; /* lost a race for that entry: probe again */
            }
        }
    }
}

static bool omai_ptrtab_take(int kind, uint64_t key, int *dev, uint64_t *bytes) {
    if (__atomic_load_n(&tab_state, __ATOMIC_ACQUIRE) != 2) {
        return false;
    }
    uint64_t k = stored_key(kind, key);
    uint32_t i = home(k);
    for (uint32_t n = 0; n < PT_SIZE; n++, i = (i + 1) & PT_MASK) {
        uint64_t cur = __atomic_load_n(&tab[i].key, __ATOMIC_ACQUIRE);
        if (cur == K_EMPTY) {
            return false;
        }
        if (cur == k) {
            uint32_t d = __atomic_load_n(&tab[i].dev, __ATOMIC_ACQUIRE);
            uint64_t b = __atomic_load_n(&tab[i].bytes, __ATOMIC_RELAXED);
            if (!__atomic_compare_exchange_n(&tab[i].key, &cur, K_TOMB, false, __ATOMIC_ACQ_REL,
                                             __ATOMIC_RELAXED)) {
                return false; /* another thread freed it first */
            }
            __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
            *dev = (int)d;
            *bytes = b;
            return true;
        }
    }
    return false;
}

void omai_ptrtab_after_fork_child(void) {
    /* The parent's allocations are not the child's to free. */
    if (tab) {
        munmap(tab, sizeof(entry) * PT_SIZE);
    }
    tab = NULL;
    live = 0;
    tab_state = 0;
}
