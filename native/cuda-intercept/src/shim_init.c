/*
 * shim_init.c - one-time set-up of the shim.
 *
 * The constructor finds the real dlsym (dlvsym(RTLD_NEXT, ...) by glibc symbol
 * version; no glibc internals) and registers the fork handler. The driver
 * tables are resolved once, from the constructor when libcuda.so.1 /
 * libnvidia-ml.so.1 are already loaded (programs linked against them), else on
 * the first call that needs them (cudart dlopens the driver later). A process
 * that never touches CUDA never loads it because of us.
 *
 * Re-entrancy: resolving may run the driver's own constructors, which may call
 * dlsym (ours). While a thread resolves, its dlsym calls pass straight to the
 * real one (per-thread flag) and other threads wait for the result.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

omai_real_cuda omai_cu;
omai_real_nvml omai_nv;
omai_dlsym_fn omai_real_dlsym;
int omai_cuda_state;
static int nvml_state;

/* Set while this thread resolves a driver table. */
__thread int omai_resolving_here;

unsigned omai_shim_abi_version(void) { return OMAI_ABI_VERSION; }

void omai_log(const char *fmt, ...) {
    char line[512];
    int n = snprintf(line, sizeof line, "omai-shim[%ld]: ", (long)getpid());
    if (n < 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
    }
    line[len++] = '\n';
    /* One write(2) per line so lines of concurrent processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* --------------------------------------------------------------- real dlsym */

void omai_resolve_real_dlsym(void) {
    if (omai_real_dlsym) {
        return;
    }
    /* glibc >= 2.34 moved dlsym into libc at version GLIBC_2.34; older ones
     * export it from libdl at the architecture's base version. */
    static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.0"};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        void *p = dlvsym(RTLD_NEXT, "dlsym", versions[i]);
        if (p) {
            omai_real_dlsym = (omai_dlsym_fn)p;
            return;
        }
    }
    omai_log("cannot find the real dlsym (tried dlvsym(RTLD_NEXT, \"dlsym\", GLIBC_2.34/2.2.5/2.17/2.0)); "
             "dlsym lookups will fail");
}

/* --------------------------------------------------- refused legacy variants */

static CUresult deny_legacy(const char *name) {
    static int said;
    if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED)) {
        omai_log("%s (pre-CUDA 3.2 32-bit ABI) is not supported under the OMAI memory quota; "
                 "returning CUDA_ERROR_NOT_SUPPORTED (use the _v2 entry point)", name);
    }
    return CUDA_ERROR_NOT_SUPPORTED;
}

/* Exported under the legacy names; the arguments (whatever the caller passed)
 * are not read, so the C prototype does not matter to the ABI. */
#define OMAI_DENY_CU(n, f)                                                   \
    CUresult n(void) __attribute__((visibility("default")));                 \
    CUresult n(void) { return deny_legacy(#n); }
#include "hooks.def"

/* ------------------------------------------------------------ driver tables */

typedef struct hook_entry {
    const char *name;
    const char *family; /* NULL for NVML */
    size_t real_offset; /* into omai_real_cuda / omai_real_nvml */
    void *wrapper;
} hook_entry;

#define OMAI_HOOK_CU(n, f) {#n, f, offsetof(omai_real_cuda, n), (void *)&n},
#define OMAI_DENY_CU(n, f) {#n, f, offsetof(omai_real_cuda, n), (void *)&n},
static const hook_entry cuda_hooks[] = {
#include "hooks.def"
};

#define OMAI_HOOK_NVML(n) {#n, NULL, offsetof(omai_real_nvml, n), (void *)&n},
static const hook_entry nvml_hooks[] = {
#include "hooks.def"
};

typedef struct real_entry {
    const char *name;
    size_t offset;
} real_entry;

#define OMAI_HOOK_CU(n, f) {#n, offsetof(omai_real_cuda, n)},
#define OMAI_DENY_CU(n, f) {#n, offsetof(omai_real_cuda, n)},
#define OMAI_REAL_CU(n) {#n, offsetof(omai_real_cuda, n)},
static const real_entry cuda_reals[] = {
#include "hooks.def"
};

#define OMAI_HOOK_NVML(n) {#n, offsetof(omai_real_nvml, n)},
#define OMAI_REAL_NVML(n) {#n, offsetof(omai_real_nvml, n)},
static const real_entry nvml_reals[] = {
#include "hooks.def"
};

static void fill_table(void *handle, void *table, const real_entry *e, size_t n) {
    for (size_t i = 0; i < n; i++) {
        void *p = omai_real_dlsym(handle, e[i].name);
        memcpy((char *)table + e[i].offset, &p, sizeof p);
    }
}

/* Resolves one driver table exactly once. state: 0 unresolved, 1 resolving,
 * 2 resolved, 3 the library cannot be loaded. Returns true when resolved. */
static bool resolve_table(int *state, const char *soname, bool load_if_absent, void *table,
                          const real_entry *reals, size_t n) {
    int s = __atomic_load_n(state, __ATOMIC_ACQUIRE);
    if (s == 2) {
        return true;
    }
    if (omai_resolving_here || !omai_real_dlsym) {
        return false; /* called from inside our own resolution */
    }
    int expected = 0;
    if (!__atomic_compare_exchange_n(state, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        /* Another thread resolves: wait (a few dlsym calls), or report failure. */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while ((s = __atomic_load_n(state, __ATOMIC_ACQUIRE)) == 1) {
            sched_yield();
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec > 10) {
                omai_log("gave up waiting 10 s for another thread to resolve %s", soname);
                return false;
            }
        }
        return s == 2;
    }
    omai_resolving_here = 1;
    void *handle = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
    int next = 0; /* not loaded yet: try again when it is */
    if (!handle && load_if_absent) {
        handle = dlopen(soname, RTLD_NOW | RTLD_GLOBAL);
        if (!handle) {
            const char *why = dlerror();
            omai_log("cannot load %s: %s; its hooked entry points return an error", soname,
                     why ? why : "unknown error");
            next = 3; /* there is none to load: do not try (and log) again on every call */
        }
    }
    if (handle) {
        fill_table(handle, table, reals, n);
        /* The handle is kept for the life of the process: the tables point into it. */
        next = 2;
    }
    omai_resolving_here = 0;
    __atomic_store_n(state, next, __ATOMIC_RELEASE);
    return handle != NULL;
}

bool omai_cuda_resolve_slow(bool load_if_absent) {
    return resolve_table(&omai_cuda_state, "libcuda.so.1", load_if_absent, &omai_cu, cuda_reals,
                         sizeof cuda_reals / sizeof cuda_reals[0]);
}

bool omai_nvml_ready(void) {
    return resolve_table(&nvml_state, "libnvidia-ml.so.1", true, &omai_nv, nvml_reals,
                         sizeof nvml_reals / sizeof nvml_reals[0]);
}

static bool nvml_resolve_if_loaded(void) {
    return resolve_table(&nvml_state, "libnvidia-ml.so.1", false, &omai_nv, nvml_reals,
                         sizeof nvml_reals / sizeof nvml_reals[0]);
}

static void *map_pointer(void *p, const hook_entry *hooks, size_t n, const void *table) {
    for (size_t i = 0; i < n; i++) {
        void *real;
        memcpy(&real, (const char *)table + hooks[i].real_offset, sizeof real);
        if (real && real == p) {
            return hooks[i].wrapper;
        }
    }
    return p;
}

/* Second opinion for a pointer that matched no real entry point: the
 * exported symbol the dynamic linker says it is (dladdr), provided it lies in
 * the same libcuda our table came from. A driver whose cuGetProcAddress hands
 * out aliases of its exports is still mapped exactly; an unnamed internal
 * function is not (the caller then refuses guarded names). */
void *omai_wrap_cuda_by_name(void *p) {
    Dl_info at, ours;
    if (!p || __atomic_load_n(&omai_cuda_state, __ATOMIC_ACQUIRE) != 2 || !omai_cu.cuGetProcAddress_v2 ||
        !dladdr(p, &at) || !at.dli_sname || !dladdr((void *)omai_cu.cuGetProcAddress_v2, &ours) ||
        at.dli_fbase != ours.dli_fbase) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof cuda_hooks / sizeof cuda_hooks[0]; i++) {
        if (strcmp(cuda_hooks[i].name, at.dli_sname) == 0) {
            return cuda_hooks[i].wrapper;
        }
    }
    return NULL;
}

void *omai_wrap_cuda_pointer(void *p) {
    if (!p || __atomic_load_n(&omai_cuda_state, __ATOMIC_ACQUIRE) != 2) {
        return p;
    }
    return map_pointer(p, cuda_hooks, sizeof cuda_hooks / sizeof cuda_hooks[0], &omai_cu);
}

void *omai_wrap_nvml_pointer(void *p) {
    if (!p || !nvml_resolve_if_loaded()) {
        return p;
    }
    return map_pointer(p, nvml_hooks, sizeof nvml_hooks / sizeof nvml_hooks[0], &omai_nv);
}

bool omai_is_guarded_name(const char *name) {
    for (size_t i = 0; i < sizeof cuda_hooks / sizeof cuda_hooks[0]; i++) {
        if (strcmp(cuda_hooks[i].family, name) == 0 || strcmp(cuda_hooks[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

bool omai_is_cuda_wrapper(const void *p) {
    for (size_t i = 0; i < sizeof cuda_hooks / sizeof cuda_hooks[0]; i++) {
        if (cuda_hooks[i].wrapper == p) {
            return true;
        }
    }
    return false;
}

/* --------------------------------------------------------------- lifecycle */

static void after_fork_child(void) {
    /* Only the forking thread lives on in the child: a resolution another
     * thread had in progress will never finish there, so start it afresh. */
    int resolving = 1;
    __atomic_compare_exchange_n(&omai_cuda_state, &resolving, 0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    resolving = 1;
    __atomic_compare_exchange_n(&nvml_state, &resolving, 0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    omai_resolving_here = 0;
    omai_region_after_fork_child();
    omai_ptrtab_after_fork_child();
}

__attribute__((constructor)) static void omai_shim_init(void) {
    omai_resolve_real_dlsym();
    /* Programs linked against the driver already have it mapped: resolve now. */
    omai_cuda_resolve_slow(false);
    nvml_resolve_if_loaded();
    int rc = pthread_atfork(NULL, NULL, after_fork_child);
    if (rc != 0) {
        omai_log("pthread_atfork failed (%s): a forked child would share its parent's usage slot",
                 strerror(rc));
    }
}

__attribute__((destructor)) static void omai_shim_fini(void) { omai_region_at_exit(); }
