/*
 * The simulated CUDA driver (libcuda.so.1). See docs/simulator.md.
 *
 * Execution model: a launch is synchronous. It queues its kernel on the
 * simulated GPU behind every kernel already there (any process), then the
 * launching thread sleeps until that kernel's end. Different processes thus
 * time-slice the device, and by the time a launch returns its kernel is done;
 * cuStreamSynchronize/cuCtxSynchronize/cuEventSynchronize wait for the latest
 * kernel end of this process (launches from other threads may still run).
 * A kernel runs for the number of microseconds in its first 32-bit parameter.
 *
 * Handles are entries of a fixed per-process table, so a stale or foreign
 * handle is detected (CUDA_ERROR_INVALID_HANDLE) instead of dereferenced.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "omai_cuda.h"
#include "omai_sim.h"
#include "sim_core.h"

#define EXPORT __attribute__((visibility("default")))

#define SIM_MAX_OBJS 4096
#define SIM_MAX_ALLOCS 16384
#define SIM_GRAPH_NODES 64
#define SIM_CTX_STACK 16
#define SIM_VMM_GRANULARITY (2ull << 20)
#define SIM_PITCH_ALIGN 512u

/* ----------------------------------------------------------- process state */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* this process's tables */
static int g_init_done;                                    /* 1 ok, -1 failed; under g_lock */
static CUresult g_init_result;
static sim_runtime g_rt;
static sim_proc *g_proc;
static uint64_t g_last_end_ns; /* latest kernel end of this process (atomic max) */

#define COUNT(field) __atomic_fetch_add(&g_proc->counters.field, 1, __ATOMIC_RELAXED)

static int initialized(void) { return __atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE) == 1; }

#define REQUIRE_INIT()                                    \
    do {                                                  \
        if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED; \
    } while (0)

/* ------------------------------------------------------------------ objects */

typedef enum obj_kind {
    OBJ_FREE = 0,
    OBJ_CTX,
    OBJ_STREAM,
    OBJ_EVENT,
    OBJ_MODULE,
    OBJ_FUNCTION,
    OBJ_GRAPH,
    OBJ_NODE,
    OBJ_EXEC,
    OBJ_ARRAY,
    OBJ_MIPMAP,
    OBJ_POOL
} obj_kind;

typedef struct sim_obj {
    obj_kind kind;
    int device;
    union {
        struct { int primary; int refs; unsigned flags; } ctx;
        struct { uint64_t time_ns; int recorded; unsigned flags; } event;
        struct { char name[64]; } fn;
        struct { int nodes; uint64_t dur_ns[SIM_GRAPH_NODES]; } graph; /* also OBJ_EXEC */
        struct { uint64_t bytes; } array;
    } u;
} sim_obj;

static sim_obj g_objs[SIM_MAX_OBJS];
static sim_obj *g_primary[SIM_MAX_GPUS]; /* primary contexts, created on first retain */
static int g_ctx_count[SIM_MAX_GPUS];    /* live contexts per device, for NVML's process list */

static __thread CUcontext t_ctx_stack[SIM_CTX_STACK];
static __thread int t_ctx_depth;

/* Only called with g_lock held. */
static sim_obj *obj_new(obj_kind kind, int device) {
    for (int i = 0; i < SIM_MAX_OBJS; i++) {
        if (g_objs[i].kind == OBJ_FREE) {
            memset(&g_objs[i], 0, sizeof g_objs[i]);
            g_objs[i].kind = kind;
            g_objs[i].device = device;
            return &g_objs[i];
        }
    }
    return NULL;
}

/* Maps a handle back to its table entry; NULL if it is not a live one of kind. */
static sim_obj *obj_get(const void *handle, obj_kind kind) {
    uintptr_t h = (uintptr_t)handle, base = (uintptr_t)g_objs;
    if (h < base || h >= base + sizeof g_objs || (h - base) % sizeof(sim_obj) != 0) return NULL;
    sim_obj *o = &g_objs[(h - base) / sizeof(sim_obj)];
    return o->kind == kind ? o : NULL;
}

/* -------------------------------------------------------- allocation table */

typedef enum alloc_kind { ALLOC_LINEAR = 1, ALLOC_VMM_HANDLE, ALLOC_VA_RANGE } alloc_kind;

typedef struct sim_alloc {
    alloc_kind kind;
    int device;
    uint64_t addr;   /* device address, or the VMM handle value */
    uint64_t bytes;  /* size (VA range: reserved size) */
    uint64_t charged; /* device memory charged to the GPU */
} sim_alloc;

static sim_alloc g_allocs[SIM_MAX_ALLOCS];
static uint64_t g_next_va = 0x7f0000000000ull;
static uint64_t g_next_vmm_handle = 0x1000;

static sim_alloc *alloc_slot(void) {
    for (int i = 0; i < SIM_MAX_ALLOCS; i++)
        if (g_allocs[i].kind == 0) return &g_allocs[i];
    return NULL;
}

static sim_alloc *alloc_find(alloc_kind kind, uint64_t addr) {
    for (int i = 0; i < SIM_MAX_ALLOCS; i++)
        if (g_allocs[i].kind == kind && g_allocs[i].addr == addr) return &g_allocs[i];
    return NULL;
}

static uint64_t next_va(uint64_t bytes) {
    uint64_t va = g_next_va;
    g_next_va += (bytes + SIM_VMM_GRANULARITY - 1) / SIM_VMM_GRANULARITY * SIM_VMM_GRANULARITY +
                 SIM_VMM_GRANULARITY;
    return va;
}

/* Charges bytes to device and records a linear allocation; *out = its address. */
static CUresult charge_linear(int device, uint64_t bytes, CUdeviceptr *out) {
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    if (sim_reserve(g_rt.st, g_proc, device, bytes) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&g_lock);
    sim_alloc *a = alloc_slot();
    if (a == NULL) {
        pthread_mutex_unlock(&g_lock);
        sim_release(g_rt.st, g_proc, device, bytes);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    a->kind = ALLOC_LINEAR;
    a->device = device;
    a->addr = next_va(bytes);
    a->bytes = bytes;
    a->charged = bytes;
    *out = a->addr;
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

static CUresult free_linear(CUdeviceptr ptr) {
    pthread_mutex_lock(&g_lock);
    sim_alloc *a = alloc_find(ALLOC_LINEAR, ptr);
    if (a == NULL) {
        pthread_mutex_unlock(&g_lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    sim_alloc copy = *a;
    a->kind = 0;
    pthread_mutex_unlock(&g_lock);
    sim_release(g_rt.st, g_proc, copy.device, copy.charged);
    return CUDA_SUCCESS;
}

/* Wraps an allocation entry point: counts the call and its failure. */
static CUresult counted_alloc(CUresult rc) {
    if (rc != CUDA_SUCCESS) COUNT(alloc_failures);
    return rc;
}

/* ------------------------------------------------------------ init, errors */

/* A forked child is a new process: it must not act as its parent's slot or
 * use its parent's handles. Until it calls cuInit itself every call answers
 * CUDA_ERROR_NOT_INITIALIZED; cuInit then claims a slot of its own. */
static void forget_parent_after_fork(void) {
    pthread_mutex_init(&g_lock, NULL);
    if (g_init_done == 1) g_init_done = 0;
    g_proc = NULL;
    g_last_end_ns = 0;
    memset(g_objs, 0, sizeof g_objs);
    memset(g_allocs, 0, sizeof g_allocs);
    memset(g_primary, 0, sizeof g_primary);
    memset(g_ctx_count, 0, sizeof g_ctx_count);
    t_ctx_depth = 0;
}

static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, forget_parent_after_fork); }

static void parse_visible_devices(void);

EXPORT CUresult cuInit(unsigned int Flags) {
    if (Flags != 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_once(&g_atfork_once, register_atfork);
    pthread_mutex_lock(&g_lock);
    if (g_init_done == 0) {
        char err[1024];
        /* After a fork the parent's mapping is inherited and still valid. */
        sim_open_error e = g_rt.st != NULL ? SIM_OPEN_OK : sim_open(&g_rt, err, sizeof err);
        if (e == SIM_OPEN_OK) {
            sim_lock(g_rt.st);
            g_proc = sim_find_or_claim_proc_locked(g_rt.st);
            sim_unlock(g_rt.st);
            if (g_proc == NULL) {
                fprintf(stderr, "omai-sim: cuInit: all %d process slots of %s are in use by live processes\n",
                        SIM_MAX_PROCS, g_rt.state_path);
                g_init_result = CUDA_ERROR_OPERATING_SYSTEM;
            } else {
                parse_visible_devices();
                g_init_result = CUDA_SUCCESS;
            }
        } else {
            fprintf(stderr, "omai-sim: cuInit: %s\n", err);
            /* No readable GPU description is "no device"; an unusable state dir is an OS error. */
            g_init_result = e == SIM_OPEN_BAD_CONFIG ? CUDA_ERROR_NO_DEVICE : CUDA_ERROR_OPERATING_SYSTEM;
        }
        __atomic_store_n(&g_init_done, g_init_result == CUDA_SUCCESS ? 1 : -1, __ATOMIC_RELEASE);
    }
    CUresult rc = g_init_result;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT CUresult cuDriverGetVersion(int *driverVersion) {
    if (driverVersion == NULL) return CUDA_ERROR_INVALID_VALUE;
    /* Works before cuInit, as the real driver's does. */
    *driverVersion = initialized() ? g_rt.cfg.cuda_version : SIM_DEFAULT_CUDA_VERSION;
    return CUDA_SUCCESS;
}

static const struct {
    CUresult code;
    const char *name;
    const char *text;
} k_errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_DEINITIALIZED, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {CUDA_ERROR_STUB_LIBRARY, "CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"},
    {CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA_ERROR_DEVICE_UNAVAILABLE", "CUDA-capable device(s) is/are busy or unavailable"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_ALREADY_MAPPED, "CUDA_ERROR_ALREADY_MAPPED", "resource already mapped"},
    {CUDA_ERROR_NOT_MAPPED, "CUDA_ERROR_NOT_MAPPED", "resource not mapped"},
    {CUDA_ERROR_FILE_NOT_FOUND, "CUDA_ERROR_FILE_NOT_FOUND", "file not found"},
    {CUDA_ERROR_OPERATING_SYSTEM, "CUDA_ERROR_OPERATING_SYSTEM", "OS call failed or operation not supported on this OS"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_ILLEGAL_STATE, "CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE, "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE", "primary context active"},
    {CUDA_ERROR_CONTEXT_IS_DESTROYED, "CUDA_ERROR_CONTEXT_IS_DESTROYED", "context is destroyed"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE, "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE", "too many blocks in cooperative launch"},
    {CUDA_ERROR_NOT_PERMITTED, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

static CUresult error_lookup(CUresult error, const char **pStr, int text) {
    if (pStr == NULL) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof k_errors / sizeof k_errors[0]; i++) {
        if (k_errors[i].code == error) {
            *pStr = text ? k_errors[i].text : k_errors[i].name;
            return CUDA_SUCCESS;
        }
    }
    *pStr = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuGetErrorName(CUresult error, const char **pStr) { return error_lookup(error, pStr, 0); }
EXPORT CUresult cuGetErrorString(CUresult error, const char **pStr) { return error_lookup(error, pStr, 1); }

EXPORT CUresult omaiSimGetCounters(omai_sim_counters *out, size_t size) {
    REQUIRE_INIT();
    if (out == NULL || size != sizeof *out) return CUDA_ERROR_INVALID_VALUE;
    const omai_sim_counters *c = &g_proc->counters;
    out->alloc_calls = __atomic_load_n(&c->alloc_calls, __ATOMIC_RELAXED);
    out->alloc_failures = __atomic_load_n(&c->alloc_failures, __ATOMIC_RELAXED);
    out->free_calls = __atomic_load_n(&c->free_calls, __ATOMIC_RELAXED);
    out->launch_calls = __atomic_load_n(&c->launch_calls, __ATOMIC_RELAXED);
    out->kernels_run = __atomic_load_n(&c->kernels_run, __ATOMIC_RELAXED);
    out->busy_ns = __atomic_load_n(&c->busy_ns, __ATOMIC_RELAXED);
    out->mem_info_calls = __atomic_load_n(&c->mem_info_calls, __ATOMIC_RELAXED);
    out->proc_address_calls = __atomic_load_n(&c->proc_address_calls, __ATOMIC_RELAXED);
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------ devices */

/*
 * CUDA_VISIBLE_DEVICES, as the real driver reads it at cuInit: a comma list of
 * indices or UUIDs ("GPU-..." or a unique prefix of one); the list ends at the
 * first entry that names no GPU; unset means every GPU. As with the real
 * driver, a CUdevice is the ordinal among the visible GPUs: it is turned into
 * the GPU's index in the config (its "physical" index) at the API boundary,
 * and back when a device is handed out.
 */
static int g_visible[SIM_MAX_GPUS];
static int g_visible_count = -1; /* -1: not parsed yet */

static int gpu_by_visible_entry(const char *entry, size_t len) {
    if (len == 0) return -1;
    char *end = NULL;
    char digits[16];
    if (len < sizeof digits && entry[0] >= '0' && entry[0] <= '9') {
        memcpy(digits, entry, len);
        digits[len] = '\0';
        long index = strtol(digits, &end, 10);
        return (*end == '\0' && index >= 0 && index < g_rt.cfg.gpu_count) ? (int)index : -1;
    }
    int match = -1;
    for (int i = 0; i < g_rt.cfg.gpu_count; i++) {
        if (strncmp(g_rt.cfg.gpus[i].uuid, entry, len) == 0) {
            if (match >= 0) return -1; /* an ambiguous prefix names no GPU */
            match = i;
        }
    }
    return match;
}

static void parse_visible_devices(void) {
    const char *list = getenv("CUDA_VISIBLE_DEVICES");
    g_visible_count = 0;
    if (list == NULL) {
        for (int i = 0; i < g_rt.cfg.gpu_count; i++) g_visible[g_visible_count++] = i;
        return;
    }
    while (*list != '\0' && g_visible_count < g_rt.cfg.gpu_count) {
        size_t len = strcspn(list, ",");
        int gpu = gpu_by_visible_entry(list, len);
        if (gpu < 0) break;
        bool seen = false;
        for (int k = 0; k < g_visible_count; k++) seen = seen || g_visible[k] == gpu;
        if (!seen) g_visible[g_visible_count++] = gpu;
        list += len;
        if (*list == ',') list++;
    }
}

/* Config index of a visible ordinal, or -1. */
static int to_physical(CUdevice ordinal) {
    return ordinal >= 0 && ordinal < g_visible_count ? g_visible[ordinal] : -1;
}

/* Visible ordinal of a config index, or -1 when that GPU is not visible. */
static int to_ordinal(int physical) {
    for (int k = 0; k < g_visible_count; k++) {
        if (g_visible[k] == physical) return k;
    }
    return -1;
}

/* Validates the ordinal parameter `dev` and turns it into the config index. */
#define REQUIRE_DEVICE(dev)                                            \
    do {                                                               \
        REQUIRE_INIT();                                                \
        if (((dev) = to_physical(dev)) < 0) return CUDA_ERROR_INVALID_DEVICE; \
    } while (0)

EXPORT CUresult cuDeviceGetCount(int *count) {
    REQUIRE_INIT();
    if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
    *count = g_visible_count;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice *device, int ordinal) {
    REQUIRE_INIT();
    if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (to_physical(ordinal) < 0) return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
    REQUIRE_DEVICE(dev);
    if (name == NULL || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "%s", g_rt.cfg.gpus[dev].name);
    return CUDA_SUCCESS;
}

static void uuid_bytes(const char *text, CUuuid *out) {
    memset(out, 0, sizeof *out);
    int nibble = 0;
    for (const char *p = text + 4; *p && nibble < 32; p++) { /* skip "GPU-" */
        int v;
        if (*p >= '0' && *p <= '9') v = *p - '0';
        else if (*p >= 'a' && *p <= 'f') v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F') v = *p - 'A' + 10;
        else continue;
        out->bytes[nibble / 2] = (char)(out->bytes[nibble / 2] | (nibble % 2 ? v : v << 4));
        nibble++;
    }
}

EXPORT CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev) {
    REQUIRE_DEVICE(dev);
    if (uuid == NULL) return CUDA_ERROR_INVALID_VALUE;
    uuid_bytes(g_rt.cfg.gpus[dev].uuid, uuid);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev) {
    REQUIRE_DEVICE(dev);
    if (uuid == NULL) return CUDA_ERROR_INVALID_VALUE;
    uuid_bytes(g_rt.cfg.gpus[dev].uuid, uuid);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev) {
    REQUIRE_DEVICE(dev);
    if (pi == NULL) return CUDA_ERROR_INVALID_VALUE;
    const sim_gpu_config *g = &g_rt.cfg.gpus[dev];
    switch (attrib) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *pi = 32; break;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: *pi = 1980000; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *pi = g->sms; break;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED: *pi = 0; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_MODE: *pi = 0; break;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: *pi = (int)g->pci_bus; break;
    case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: *pi = (int)g->pci_device; break;
    case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: *pi = (int)g->pci_domain; break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *pi = g->cc_major; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *pi = g->cc_minor; break;
    case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_COOPERATIVE_MULTI_DEVICE_LAUNCH: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: *pi = 1; break;
    case CU_DEVICE_ATTRIBUTE_NUMA_ID: *pi = g->numa_node; break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev) {
    REQUIRE_DEVICE(dev);
    if (pciBusId == NULL || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    const sim_gpu_config *g = &g_rt.cfg.gpus[dev];
    snprintf(pciBusId, (size_t)len, "%04x:%02x:%02x.%x", g->pci_domain, g->pci_bus, g->pci_device,
             g->pci_function);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetByPCIBusId(CUdevice *dev, const char *pciBusId) {
    REQUIRE_INIT();
    if (dev == NULL || pciBusId == NULL) return CUDA_ERROR_INVALID_VALUE;
    unsigned d = 0, b = 0, v = 0, f = 0;
    if (sscanf(pciBusId, "%x:%x:%x.%x", &d, &b, &v, &f) < 3) return CUDA_ERROR_INVALID_VALUE;
    for (int i = 0; i < g_rt.cfg.gpu_count; i++) {
        const sim_gpu_config *g = &g_rt.cfg.gpus[i];
        if (to_ordinal(i) >= 0 && g->pci_domain == d && g->pci_bus == b && g->pci_device == v &&
            g->pci_function == f) {
            *dev = to_ordinal(i);
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_INVALID_DEVICE;
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    REQUIRE_DEVICE(dev);
    COUNT(mem_info_calls);
    if (bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
    *bytes = (size_t)g_rt.cfg.gpus[dev].memory_bytes;
    return CUDA_SUCCESS;
}

/* ----------------------------------------------------------------- contexts */

/* With g_lock held: a context on dev appeared or went away. */
static void context_count(int dev, int delta) {
    g_ctx_count[dev] += delta;
    uint8_t present = g_ctx_count[dev] > 0;
    __atomic_store_n(&g_proc->has_context[dev], present, __ATOMIC_RELAXED);
}

static CUcontext current_ctx(void) { return t_ctx_depth > 0 ? t_ctx_stack[t_ctx_depth - 1] : NULL; }

/* The device of the calling thread's current context. */
static CUresult current_device(int *dev) {
    sim_obj *c = obj_get(current_ctx(), OBJ_CTX);
    if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    *dev = c->device;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
    REQUIRE_DEVICE(dev);
    if (pctx == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    if (g_primary[dev] == NULL) {
        g_primary[dev] = obj_new(OBJ_CTX, dev);
        if (g_primary[dev] == NULL) {
            pthread_mutex_unlock(&g_lock);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        g_primary[dev]->u.ctx.primary = 1;
    }
    if (g_primary[dev]->u.ctx.refs++ == 0) context_count(dev, +1);
    *pctx = (CUcontext)g_primary[dev];
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

static CUresult primary_release(CUdevice dev) {
    REQUIRE_DEVICE(dev);
    pthread_mutex_lock(&g_lock);
    CUresult rc = CUDA_SUCCESS;
    if (g_primary[dev] == NULL || g_primary[dev]->u.ctx.refs == 0) {
        rc = CUDA_ERROR_INVALID_CONTEXT;
    } else if (--g_primary[dev]->u.ctx.refs == 0) {
        context_count(dev, -1);
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice dev) { return primary_release(dev); }
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) { return primary_release(dev); }

EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active) {
    REQUIRE_DEVICE(dev);
    if (flags == NULL || active == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    *active = g_primary[dev] != NULL && g_primary[dev]->u.ctx.refs > 0;
    *flags = g_primary[dev] != NULL ? g_primary[dev]->u.ctx.flags : 0;
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev) {
    REQUIRE_DEVICE(dev);
    if (pctx == NULL || (flags & ~(unsigned)(CU_CTX_SCHED_MASK | CU_CTX_MAP_HOST)) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (t_ctx_depth == SIM_CTX_STACK) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&g_lock);
    sim_obj *c = obj_new(OBJ_CTX, dev);
    if (c != NULL) {
        c->u.ctx.flags = flags;
        context_count(dev, +1);
    }
    pthread_mutex_unlock(&g_lock);
    if (c == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    t_ctx_stack[t_ctx_depth++] = (CUcontext)c; /* a new context becomes current */
    *pctx = (CUcontext)c;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx) {
    REQUIRE_INIT();
    pthread_mutex_lock(&g_lock);
    sim_obj *c = obj_get(ctx, OBJ_CTX);
    if (c == NULL || c->u.ctx.primary) {
        pthread_mutex_unlock(&g_lock);
        return c == NULL ? CUDA_ERROR_INVALID_CONTEXT : CUDA_ERROR_INVALID_VALUE;
    }
    context_count(c->device, -1);
    c->kind = OBJ_FREE;
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < t_ctx_depth; i++)
        if (t_ctx_stack[i] == ctx) t_ctx_stack[i] = NULL;
    if (t_ctx_depth > 0 && t_ctx_stack[t_ctx_depth - 1] == NULL) t_ctx_depth--;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext *pctx) {
    REQUIRE_INIT();
    if (pctx == NULL) return CUDA_ERROR_INVALID_VALUE;
    *pctx = current_ctx();
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSetCurrent(CUcontext ctx) {
    REQUIRE_INIT();
    if (ctx != NULL && obj_get(ctx, OBJ_CTX) == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    if (t_ctx_depth == 0) {
        if (ctx != NULL) t_ctx_stack[t_ctx_depth++] = ctx;
    } else if (ctx == NULL) {
        t_ctx_depth--;
    } else {
        t_ctx_stack[t_ctx_depth - 1] = ctx;
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
    REQUIRE_INIT();
    if (obj_get(ctx, OBJ_CTX) == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    if (t_ctx_depth == SIM_CTX_STACK) return CUDA_ERROR_OUT_OF_MEMORY;
    t_ctx_stack[t_ctx_depth++] = ctx;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *pctx) {
    REQUIRE_INIT();
    if (t_ctx_depth == 0) return CUDA_ERROR_INVALID_CONTEXT;
    CUcontext top = t_ctx_stack[--t_ctx_depth];
    if (pctx != NULL) *pctx = top;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetDevice(CUdevice *device) {
    REQUIRE_INIT();
    if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
    int physical;
    CUresult rc = current_device(&physical);
    if (rc == CUDA_SUCCESS) *device = to_ordinal(physical);
    return rc;
}

/* Waits for every kernel this process has queued. */
static void wait_own_kernels(void) {
    sim_sleep_until(__atomic_load_n(&g_last_end_ns, __ATOMIC_ACQUIRE));
}

EXPORT CUresult cuCtxSynchronize(void) {
    REQUIRE_INIT();
    int dev;
    CUresult rc = current_device(&dev);
    if (rc != CUDA_SUCCESS) return rc;
    wait_own_kernels();
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------ streams */

/* The device a stream runs on: NULL and the special handles mean the current
 * context's. */
static CUresult stream_device(CUstream s, int *dev) {
    if (s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) return current_device(dev);
    sim_obj *o = obj_get(s, OBJ_STREAM);
    if (o == NULL) return CUDA_ERROR_INVALID_HANDLE;
    *dev = o->device;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags) {
    REQUIRE_INIT();
    if (phStream == NULL || (Flags & ~(unsigned)CU_STREAM_NON_BLOCKING) != 0) return CUDA_ERROR_INVALID_VALUE;
    int dev;
    CUresult rc = current_device(&dev);
    if (rc != CUDA_SUCCESS) return rc;
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_new(OBJ_STREAM, dev);
    pthread_mutex_unlock(&g_lock);
    if (o == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    *phStream = (CUstream)o;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamGetDevice(CUstream hStream, CUdevice *device) {
    REQUIRE_INIT();
    if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
    int physical;
    CUresult rc = stream_device(hStream, &physical);
    if (rc == CUDA_SUCCESS) *device = to_ordinal(physical);
    return rc;
}

EXPORT CUresult cuStreamDestroy_v2(CUstream hStream) {
    REQUIRE_INIT();
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_get(hStream, OBJ_STREAM);
    if (o != NULL) o->kind = OBJ_FREE;
    pthread_mutex_unlock(&g_lock);
    return o == NULL ? CUDA_ERROR_INVALID_HANDLE : CUDA_SUCCESS;
}

static CUresult stream_sync(CUstream hStream) {
    REQUIRE_INIT();
    int dev;
    CUresult rc = stream_device(hStream, &dev);
    if (rc != CUDA_SUCCESS) return rc;
    wait_own_kernels();
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamSynchronize(CUstream hStream) { return stream_sync(hStream); }
EXPORT CUresult cuStreamSynchronize_ptsz(CUstream hStream) { return stream_sync(hStream); }

/* ------------------------------------------------------------------- events */

EXPORT CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags) {
    REQUIRE_INIT();
    if (phEvent == NULL || (Flags & ~(unsigned)(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING)) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    int dev;
    CUresult rc = current_device(&dev);
    if (rc != CUDA_SUCCESS) return rc;
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_new(OBJ_EVENT, dev);
    if (o != NULL) o->u.event.flags = Flags;
    pthread_mutex_unlock(&g_lock);
    if (o == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    *phEvent = (CUevent)o;
    return CUDA_SUCCESS;
}

static CUresult event_record(CUevent hEvent, CUstream hStream) {
    REQUIRE_INIT();
    int dev;
    CUresult rc = stream_device(hStream, &dev);
    if (rc != CUDA_SUCCESS) return rc;
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_get(hEvent, OBJ_EVENT);
    if (o != NULL) {
        /* The event completes when the work queued before it does. */
        uint64_t now = sim_now_ns(), last = __atomic_load_n(&g_last_end_ns, __ATOMIC_ACQUIRE);
        o->u.event.time_ns = last > now ? last : now;
        o->u.event.recorded = 1;
    }
    pthread_mutex_unlock(&g_lock);
    return o == NULL ? CUDA_ERROR_INVALID_HANDLE : CUDA_SUCCESS;
}

EXPORT CUresult cuEventRecord(CUevent hEvent, CUstream hStream) { return event_record(hEvent, hStream); }
EXPORT CUresult cuEventRecord_ptsz(CUevent hEvent, CUstream hStream) { return event_record(hEvent, hStream); }

EXPORT CUresult cuEventSynchronize(CUevent hEvent) {
    REQUIRE_INIT();
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_get(hEvent, OBJ_EVENT);
    uint64_t t = o != NULL ? o->u.event.time_ns : 0;
    pthread_mutex_unlock(&g_lock);
    if (o == NULL) return CUDA_ERROR_INVALID_HANDLE;
    sim_sleep_until(t);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd) {
    REQUIRE_INIT();
    if (pMilliseconds == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    sim_obj *a = obj_get(hStart, OBJ_EVENT), *b = obj_get(hEnd, OBJ_EVENT);
    CUresult rc = CUDA_SUCCESS;
    if (a == NULL || b == NULL) {
        rc = CUDA_ERROR_INVALID_HANDLE;
    } else if (!a->u.event.recorded || !b->u.event.recorded) {
        rc = CUDA_ERROR_INVALID_HANDLE;
    } else if ((a->u.event.flags | b->u.event.flags) & CU_EVENT_DISABLE_TIMING) {
        rc = CUDA_ERROR_INVALID_HANDLE;
    } else if (b->u.event.time_ns > sim_now_ns()) {
        rc = CUDA_ERROR_NOT_READY;
    } else {
        *pMilliseconds = (float)((double)((int64_t)(b->u.event.time_ns - a->u.event.time_ns)) / 1e6);
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT CUresult cuEventDestroy_v2(CUevent hEvent) {
    REQUIRE_INIT();
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_get(hEvent, OBJ_EVENT);
    if (o != NULL) o->kind = OBJ_FREE;
    pthread_mutex_unlock(&g_lock);
    return o == NULL ? CUDA_ERROR_INVALID_HANDLE : CUDA_SUCCESS;
}

/* ------------------------------------------------------------------- memory */

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
    REQUIRE_INIT();
    COUNT(alloc_calls);
    int dev;
    CUresult rc = current_device(&dev);
    if (rc == CUDA_SUCCESS) rc = dptr == NULL ? CUDA_ERROR_INVALID_VALUE : charge_linear(dev, bytesize, dptr);
    return counted_alloc(rc);
}

EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                                   unsigned int ElementSizeBytes) {
    REQUIRE_INIT();
    COUNT(alloc_calls);
    int dev;
    CUresult rc = current_device(&dev);
    if (rc != CUDA_SUCCESS) return counted_alloc(rc);
    if (dptr == NULL || pPitch == NULL || WidthInBytes == 0 || Height == 0 ||
        (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16))
        return counted_alloc(CUDA_ERROR_INVALID_VALUE);
    size_t pitch = (WidthInBytes + SIM_PITCH_ALIGN - 1) / SIM_PITCH_ALIGN * SIM_PITCH_ALIGN;
    if (pitch < WidthInBytes || Height > SIZE_MAX / pitch) return counted_alloc(CUDA_ERROR_INVALID_VALUE);
    rc = charge_linear(dev, (uint64_t)pitch * Height, dptr);
    if (rc == CUDA_SUCCESS) *pPitch = pitch;
    return counted_alloc(rc);
}

EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags) {
    REQUIRE_INIT();
    COUNT(alloc_calls);
    int dev;
    CUresult rc = current_device(&dev);
    if (rc != CUDA_SUCCESS) return counted_alloc(rc);
    if (dptr == NULL || (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST))
        return counted_alloc(CUDA_ERROR_INVALID_VALUE);
    /* Managed memory is charged to the device of the current context in full. */
    return counted_alloc(charge_linear(dev, bytesize, dptr));
}

static CUresult alloc_async(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
    REQUIRE_INIT();
    COUNT(alloc_calls);
    int dev;
    CUresult rc = stream_device(hStream, &dev);
    if (rc == CUDA_SUCCESS) rc = dptr == NULL ? CUDA_ERROR_INVALID_VALUE : charge_linear(dev, bytesize, dptr);
    return counted_alloc(rc);
}

EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
    return alloc_async(dptr, bytesize, hStream);
}
EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
    return alloc_async(dptr, bytesize, hStream);
}

static CUresult alloc_from_pool(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream) {
    REQUIRE_INIT();
    COUNT(alloc_calls);
    int stream_dev;
    CUresult rc = stream_device(hStream, &stream_dev);
    if (rc != CUDA_SUCCESS) return counted_alloc(rc);
    pthread_mutex_lock(&g_lock);
    sim_obj *p = obj_get(pool, OBJ_POOL);
    int dev = p != NULL ? p->device : -1;
    pthread_mutex_unlock(&g_lock);
    if (p == NULL) return counted_alloc(CUDA_ERROR_INVALID_HANDLE);
    if (dptr == NULL) return counted_alloc(CUDA_ERROR_INVALID_VALUE);
    return counted_alloc(charge_linear(dev, bytesize, dptr));
}

EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream) {
    return alloc_from_pool(dptr, bytesize, pool, hStream);
}
EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                             CUstream hStream) {
    return alloc_from_pool(dptr, bytesize, pool, hStream);
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) {
    REQUIRE_INIT();
    COUNT(free_calls);
    return free_linear(dptr);
}

static CUresult free_async(CUdeviceptr dptr, CUstream hStream) {
    REQUIRE_INIT();
    COUNT(free_calls);
    int dev;
    CUresult rc = stream_device(hStream, &dev);
    return rc != CUDA_SUCCESS ? rc : free_linear(dptr);
}

EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) { return free_async(dptr, hStream); }
EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream) { return free_async(dptr, hStream); }

EXPORT CUresult cuMemGetInfo_v2(size_t *free, size_t *total) {
    REQUIRE_INIT();
    COUNT(mem_info_calls);
    int dev;
    CUresult rc = current_device(&dev);
    if (rc != CUDA_SUCCESS) return rc;
    if (free == NULL || total == NULL) return CUDA_ERROR_INVALID_VALUE;
    sim_lock(g_rt.st);
    sim_reap_dead_locked(g_rt.st);
    uint64_t all = g_rt.st->gpus[dev].total_bytes, used = sim_used_bytes_locked(g_rt.st, dev);
    sim_unlock(g_rt.st);
    *total = (size_t)all;
    *free = (size_t)(used < all ? all - used : 0);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps) {
    REQUIRE_INIT();
    if (pool == NULL || poolProps == NULL || poolProps->allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
        poolProps->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    int physical = to_physical(poolProps->location.id);
    if (physical < 0) return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_new(OBJ_POOL, physical);
    pthread_mutex_unlock(&g_lock);
    if (o == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    *pool = (CUmemoryPool)o;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool) {
    REQUIRE_INIT();
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_get(pool, OBJ_POOL);
    if (o != NULL) o->kind = OBJ_FREE;
    pthread_mutex_unlock(&g_lock);
    return o == NULL ? CUDA_ERROR_INVALID_HANDLE : CUDA_SUCCESS;
}

/* ------------------------------------------------- virtual memory management */

EXPORT CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
                                              CUmemAllocationGranularity_flags option) {
    REQUIRE_INIT();
    if (granularity == NULL || prop == NULL ||
        (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM && option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED))
        return CUDA_ERROR_INVALID_VALUE;
    *granularity = (size_t)SIM_VMM_GRANULARITY;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                            unsigned long long flags) {
    REQUIRE_INIT();
    COUNT(alloc_calls);
    if (handle == NULL || prop == NULL || flags != 0 || size == 0 || size % SIM_VMM_GRANULARITY != 0 ||
        prop->type != CU_MEM_ALLOCATION_TYPE_PINNED || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return counted_alloc(CUDA_ERROR_INVALID_VALUE);
    int dev = to_physical(prop->location.id);
    if (dev < 0) return counted_alloc(CUDA_ERROR_INVALID_DEVICE);
    if (sim_reserve(g_rt.st, g_proc, dev, size) != 0) return counted_alloc(CUDA_ERROR_OUT_OF_MEMORY);
    pthread_mutex_lock(&g_lock);
    sim_alloc *a = alloc_slot();
    if (a != NULL) {
        a->kind = ALLOC_VMM_HANDLE;
        a->device = dev;
        a->addr = g_next_vmm_handle++;
        a->bytes = size;
        a->charged = size;
        *handle = a->addr;
    }
    pthread_mutex_unlock(&g_lock);
    if (a == NULL) {
        sim_release(g_rt.st, g_proc, dev, size);
        return counted_alloc(CUDA_ERROR_OUT_OF_MEMORY);
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
    REQUIRE_INIT();
    COUNT(free_calls);
    pthread_mutex_lock(&g_lock);
    sim_alloc *a = alloc_find(ALLOC_VMM_HANDLE, handle);
    sim_alloc copy = {0};
    if (a != NULL) {
        copy = *a;
        a->kind = 0;
    }
    pthread_mutex_unlock(&g_lock);
    if (a == NULL) return CUDA_ERROR_INVALID_VALUE;
    sim_release(g_rt.st, g_proc, copy.device, copy.charged);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                    unsigned long long flags) {
    REQUIRE_INIT();
    (void)addr; /* a hint only */
    if (ptr == NULL || size == 0 || size % SIM_VMM_GRANULARITY != 0 || flags != 0 ||
        (alignment != 0 && (alignment & (alignment - 1)) != 0))
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    sim_alloc *a = alloc_slot();
    if (a != NULL) {
        a->kind = ALLOC_VA_RANGE;
        a->addr = next_va(size);
        a->bytes = size;
        *ptr = a->addr;
    }
    pthread_mutex_unlock(&g_lock);
    return a == NULL ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

EXPORT CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size) {
    REQUIRE_INIT();
    pthread_mutex_lock(&g_lock);
    sim_alloc *a = alloc_find(ALLOC_VA_RANGE, ptr);
    CUresult rc = a == NULL || a->bytes != size ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
    if (rc == CUDA_SUCCESS) a->kind = 0;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* A mapping must lie inside one reserved range. */
static int inside_reservation(CUdeviceptr ptr, size_t size) {
    for (int i = 0; i < SIM_MAX_ALLOCS; i++) {
        const sim_alloc *a = &g_allocs[i];
        if (a->kind == ALLOC_VA_RANGE && ptr >= a->addr && size <= a->bytes && ptr - a->addr <= a->bytes - size)
            return 1;
    }
    return 0;
}

EXPORT CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                         unsigned long long flags) {
    REQUIRE_INIT();
    if (size == 0 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    sim_alloc *h = alloc_find(ALLOC_VMM_HANDLE, handle);
    CUresult rc = CUDA_SUCCESS;
    if (h == NULL) rc = CUDA_ERROR_INVALID_HANDLE;
    else if (offset > h->bytes || size > h->bytes - offset || !inside_reservation(ptr, size)) rc = CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT CUresult cuMemUnmap(CUdeviceptr ptr, size_t size) {
    REQUIRE_INIT();
    pthread_mutex_lock(&g_lock);
    int ok = size != 0 && inside_reservation(ptr, size);
    pthread_mutex_unlock(&g_lock);
    return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count) {
    REQUIRE_INIT();
    if (desc == NULL || count == 0 || size == 0) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < count; i++) {
        if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || to_physical(desc[i].location.id) < 0)
            return CUDA_ERROR_INVALID_DEVICE;
        if (desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE && desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
            desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
            return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&g_lock);
    int ok = inside_reservation(ptr, size);
    pthread_mutex_unlock(&g_lock);
    return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ------------------------------------------------------------------- arrays */

static uint64_t format_bytes(CUarray_format f) {
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8: return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF: return 2;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT: return 4;
    }
    return 0; /* formats the simulator does not size */
}

/* Bytes of a W x H x D array (0 dims count as 1); 0 if invalid or overflowing. */
static uint64_t array_bytes(size_t w, size_t h, size_t d, CUarray_format f, unsigned channels) {
    uint64_t elem = format_bytes(f);
    if (elem == 0 || w == 0 || (channels != 1 && channels != 2 && channels != 4)) return 0;
    uint64_t dims[3] = {w, h ? h : 1, d ? d : 1}, bytes = elem * channels;
    for (int i = 0; i < 3; i++) {
        if (dims[i] > UINT64_MAX / bytes) return 0;
        bytes *= dims[i];
    }
    return bytes;
}

static CUresult array_create(obj_kind kind, uint64_t bytes, void **out) {
    int dev;
    CUresult rc = current_device(&dev);
    if (rc != CUDA_SUCCESS) return rc;
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_new(kind, dev);
    pthread_mutex_unlock(&g_lock);
    if (o == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    if (sim_reserve(g_rt.st, g_proc, dev, bytes) != 0) {
        pthread_mutex_lock(&g_lock);
        o->kind = OBJ_FREE;
        pthread_mutex_unlock(&g_lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    o->u.array.bytes = bytes;
    *out = o;
    return CUDA_SUCCESS;
}

static CUresult array_destroy(const void *handle, obj_kind kind) {
    REQUIRE_INIT();
    COUNT(free_calls);
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_get(handle, kind);
    sim_obj copy = {0};
    if (o != NULL) {
        copy = *o;
        o->kind = OBJ_FREE;
    }
    pthread_mutex_unlock(&g_lock);
    if (o == NULL) return CUDA_ERROR_INVALID_HANDLE;
    sim_release(g_rt.st, g_proc, copy.device, copy.u.array.bytes);
    return CUDA_SUCCESS;
}

EXPORT CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *pAllocateArray) {
    REQUIRE_INIT();
    COUNT(alloc_calls);
    if (pHandle == NULL || pAllocateArray == NULL) return counted_alloc(CUDA_ERROR_INVALID_VALUE);
    const CUDA_ARRAY_DESCRIPTOR *d = pAllocateArray;
    uint64_t bytes = array_bytes(d->Width, d->Height, 1, d->Format, d->NumChannels);
    void *h = NULL;
    CUresult rc = array_create(OBJ_ARRAY, bytes, &h);
    if (rc == CUDA_SUCCESS) *pHandle = (CUarray)h;
    return counted_alloc(rc);
}

EXPORT CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *pAllocateArray) {
    REQUIRE_INIT();
    COUNT(alloc_calls);
    if (pHandle == NULL || pAllocateArray == NULL) return counted_alloc(CUDA_ERROR_INVALID_VALUE);
    const CUDA_ARRAY3D_DESCRIPTOR *d = pAllocateArray;
    uint64_t bytes = array_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels);
    void *h = NULL;
    CUresult rc = array_create(OBJ_ARRAY, bytes, &h);
    if (rc == CUDA_SUCCESS) *pHandle = (CUarray)h;
    return counted_alloc(rc);
}

EXPORT CUresult cuArrayDestroy(CUarray hArray) { return array_destroy(hArray, OBJ_ARRAY); }

EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *pMipmappedArrayDesc,
                                       unsigned int numMipmapLevels) {
    REQUIRE_INIT();
    COUNT(alloc_calls);
    if (pHandle == NULL || pMipmappedArrayDesc == NULL || numMipmapLevels == 0)
        return counted_alloc(CUDA_ERROR_INVALID_VALUE);
    const CUDA_ARRAY3D_DESCRIPTOR *d = pMipmappedArrayDesc;
    size_t largest = d->Width > d->Height ? d->Width : d->Height;
    if (d->Depth > largest) largest = d->Depth;
    unsigned max_levels = 0;
    for (size_t s = largest; s > 0; s >>= 1) max_levels++;
    if (numMipmapLevels > max_levels) return counted_alloc(CUDA_ERROR_INVALID_VALUE);
    /* Level l halves every non-zero dimension, down to 1. */
    uint64_t total = 0;
    for (unsigned l = 0; l < numMipmapLevels; l++) {
        size_t w = d->Width >> l, h = d->Height >> l, z = d->Depth >> l;
        uint64_t level = array_bytes(w ? w : 1, d->Height ? (h ? h : 1) : 0, d->Depth ? (z ? z : 1) : 0,
                                     d->Format, d->NumChannels);
        if (level == 0 || total > UINT64_MAX - level) return counted_alloc(CUDA_ERROR_INVALID_VALUE);
        total += level;
    }
    void *h = NULL;
    CUresult rc = array_create(OBJ_MIPMAP, total, &h);
    if (rc == CUDA_SUCCESS) *pHandle = (CUmipmappedArray)h;
    return counted_alloc(rc);
}

EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray hMipmappedArray) {
    return array_destroy(hMipmappedArray, OBJ_MIPMAP);
}

/* ------------------------------------------------------------------- copies */

/* A copy must stay inside one linear allocation of this process. */
static CUresult check_device_range(CUdeviceptr p, size_t n) {
    pthread_mutex_lock(&g_lock);
    int ok = 0;
    for (int i = 0; i < SIM_MAX_ALLOCS && !ok; i++) {
        const sim_alloc *a = &g_allocs[i];
        ok = a->kind == ALLOC_LINEAR && p >= a->addr && n <= a->bytes && p - a->addr <= a->bytes - n;
    }
    pthread_mutex_unlock(&g_lock);
    return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

static CUresult copy_check(CUdeviceptr dev, const void *host, size_t n) {
    REQUIRE_INIT();
    int d;
    CUresult rc = current_device(&d);
    if (rc != CUDA_SUCCESS) return rc;
    if (host == NULL) return CUDA_ERROR_INVALID_VALUE;
    return check_device_range(dev, n);
}

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount) {
    return copy_check(dstDevice, srcHost, ByteCount);
}
EXPORT CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount) {
    return copy_check(dstDevice, srcHost, ByteCount);
}
EXPORT CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount) {
    return copy_check(srcDevice, dstHost, ByteCount);
}
EXPORT CUresult cuMemcpyDtoH_v2_ptds(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount) {
    return copy_check(srcDevice, dstHost, ByteCount);
}

/* ------------------------------------------------------------------ modules */

EXPORT CUresult cuModuleLoad(CUmodule *module, const char *fname) {
    REQUIRE_INIT();
    if (module == NULL || fname == NULL) return CUDA_ERROR_INVALID_VALUE;
    int dev;
    CUresult rc = current_device(&dev);
    if (rc != CUDA_SUCCESS) return rc;
    if (access(fname, R_OK) != 0) return CUDA_ERROR_FILE_NOT_FOUND;
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_new(OBJ_MODULE, dev);
    pthread_mutex_unlock(&g_lock);
    if (o == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    *module = (CUmodule)o;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleLoadData(CUmodule *module, const void *image) {
    REQUIRE_INIT();
    if (module == NULL || image == NULL) return CUDA_ERROR_INVALID_VALUE;
    int dev;
    CUresult rc = current_device(&dev);
    if (rc != CUDA_SUCCESS) return rc;
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_new(OBJ_MODULE, dev);
    pthread_mutex_unlock(&g_lock);
    if (o == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    *module = (CUmodule)o;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name) {
    REQUIRE_INIT();
    if (hfunc == NULL || name == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    sim_obj *m = obj_get(hmod, OBJ_MODULE);
    sim_obj *f = m != NULL ? obj_new(OBJ_FUNCTION, m->device) : NULL;
    if (f != NULL) snprintf(f->u.fn.name, sizeof f->u.fn.name, "%s", name);
    pthread_mutex_unlock(&g_lock);
    if (m == NULL) return CUDA_ERROR_INVALID_HANDLE;
    if (f == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    *hfunc = (CUfunction)f;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleUnload(CUmodule hmod) {
    REQUIRE_INIT();
    pthread_mutex_lock(&g_lock);
    sim_obj *m = obj_get(hmod, OBJ_MODULE);
    if (m != NULL) m->kind = OBJ_FREE;
    pthread_mutex_unlock(&g_lock);
    return m == NULL ? CUDA_ERROR_INVALID_HANDLE : CUDA_SUCCESS;
}

/* ------------------------------------------------------------------ launches */

/* A kernel runs for the microseconds in its first 32-bit parameter. */
static uint64_t kernel_ns(void **kernelParams) {
    if (kernelParams == NULL || kernelParams[0] == NULL) return 0;
    uint32_t us;
    memcpy(&us, kernelParams[0], sizeof us);
    return (uint64_t)us * 1000u;
}

static void note_end(uint64_t end) {
    uint64_t cur = __atomic_load_n(&g_last_end_ns, __ATOMIC_RELAXED);
    while (cur < end && !__atomic_compare_exchange_n(&g_last_end_ns, &cur, end, 1, __ATOMIC_RELEASE,
                                                     __ATOMIC_RELAXED)) {
    }
}

/* Counts one launch entry-point call on dev. */
static void count_launch(int dev) {
    COUNT(launch_calls);
    __atomic_fetch_add(&g_rt.st->gpus[dev].launch_calls, 1, __ATOMIC_RELAXED);
}

static CUresult run_kernels(int dev, const uint64_t *dur_ns, int count) {
    uint64_t end = 0;
    for (int i = 0; i < count; i++) end = sim_occupy(g_rt.st, g_proc, dev, dur_ns[i]);
    if (count > 0) {
        note_end(end);
        sim_sleep_until(end);
    }
    return CUDA_SUCCESS;
}

static CUresult launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                       unsigned bz, CUstream hStream, void **kernelParams) {
    REQUIRE_INIT();
    int dev;
    CUresult rc = stream_device(hStream, &dev);
    if (rc != CUDA_SUCCESS) return rc;
    count_launch(dev);
    if (obj_get(f, OBJ_FUNCTION) == NULL) return CUDA_ERROR_INVALID_HANDLE;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || (uint64_t)bx * by * bz > 1024)
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t dur = kernel_ns(kernelParams);
    return run_kernels(dev, &dur, 1);
}

EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                               unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                               unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra) {
    (void)sharedMemBytes;
    (void)extra;
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, hStream, kernelParams);
}

EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                                    unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                                    unsigned int sharedMemBytes, CUstream hStream, void **kernelParams,
                                    void **extra) {
    (void)sharedMemBytes;
    (void)extra;
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, hStream, kernelParams);
}

static CUresult launch_ex(const CUlaunchConfig *config, CUfunction f, void **kernelParams) {
    REQUIRE_INIT();
    if (config == NULL || (config->numAttrs > 0 && config->attrs == NULL)) return CUDA_ERROR_INVALID_VALUE;
    return launch(f, config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX, config->blockDimY,
                  config->blockDimZ, config->hStream, kernelParams);
}

EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra) {
    (void)extra;
    return launch_ex(config, f, kernelParams);
}

EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                                      void **extra) {
    (void)extra;
    return launch_ex(config, f, kernelParams);
}

EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                          unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                                          unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                                          void **kernelParams) {
    (void)sharedMemBytes;
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, hStream, kernelParams);
}

EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                               unsigned int gridDimZ, unsigned int blockDimX,
                                               unsigned int blockDimY, unsigned int blockDimZ,
                                               unsigned int sharedMemBytes, CUstream hStream,
                                               void **kernelParams) {
    (void)sharedMemBytes;
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, hStream, kernelParams);
}

/* All kernels start together (each queued on its own device); the call
 * returns when the last one ends. */
EXPORT CUresult cuLaunchCooperativeKernelMultiDevice(CUDA_LAUNCH_PARAMS *launchParamsList, unsigned int numDevices,
                                                     unsigned int flags) {
    REQUIRE_INIT();
    if (launchParamsList == NULL || numDevices == 0 || numDevices > SIM_MAX_GPUS || flags > 3)
        return CUDA_ERROR_INVALID_VALUE;
    int devs[SIM_MAX_GPUS];
    for (unsigned i = 0; i < numDevices; i++) {
        const CUDA_LAUNCH_PARAMS *p = &launchParamsList[i];
        /* The real driver requires an explicit stream per device. */
        if (p->hStream == NULL || p->hStream == CU_STREAM_LEGACY || p->hStream == CU_STREAM_PER_THREAD)
            return CUDA_ERROR_INVALID_HANDLE;
        CUresult rc = stream_device(p->hStream, &devs[i]);
        if (rc != CUDA_SUCCESS) return rc;
        if (obj_get(p->function, OBJ_FUNCTION) == NULL) return CUDA_ERROR_INVALID_HANDLE;
        for (unsigned j = 0; j < i; j++)
            if (devs[j] == devs[i]) return CUDA_ERROR_INVALID_DEVICE;
    }
    uint64_t last = 0;
    for (unsigned i = 0; i < numDevices; i++) {
        count_launch(devs[i]);
        uint64_t end = sim_occupy(g_rt.st, g_proc, devs[i], kernel_ns(launchParamsList[i].kernelParams));
        if (end > last) last = end;
    }
    note_end(last);
    sim_sleep_until(last);
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------- graphs */

EXPORT CUresult cuGraphCreate(CUgraph *phGraph, unsigned int flags) {
    REQUIRE_INIT();
    if (phGraph == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    sim_obj *g = obj_new(OBJ_GRAPH, -1);
    pthread_mutex_unlock(&g_lock);
    if (g == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    *phGraph = (CUgraph)g;
    return CUDA_SUCCESS;
}

/* The kernel's duration is read when the node is added, as the real driver
 * copies parameter values into the node. */
static CUresult add_kernel_node(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *deps, size_t ndeps,
                                CUfunction func, void **kernelParams) {
    REQUIRE_INIT();
    if (phGraphNode == NULL || (ndeps > 0 && deps == NULL)) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    CUresult rc = CUDA_SUCCESS;
    sim_obj *g = obj_get(hGraph, OBJ_GRAPH);
    sim_obj *f = obj_get(func, OBJ_FUNCTION);
    for (size_t i = 0; i < ndeps && rc == CUDA_SUCCESS; i++)
        if (obj_get(deps[i], OBJ_NODE) == NULL) rc = CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS && (g == NULL || f == NULL)) rc = CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS && g->u.graph.nodes == SIM_GRAPH_NODES) rc = CUDA_ERROR_OUT_OF_MEMORY;
    if (rc == CUDA_SUCCESS && g->device >= 0 && g->device != f->device) rc = CUDA_ERROR_INVALID_VALUE;
    sim_obj *n = rc == CUDA_SUCCESS ? obj_new(OBJ_NODE, f->device) : NULL;
    if (rc == CUDA_SUCCESS && n == NULL) rc = CUDA_ERROR_OUT_OF_MEMORY;
    if (rc == CUDA_SUCCESS) {
        g->device = f->device;
        g->u.graph.dur_ns[g->u.graph.nodes++] = kernel_ns(kernelParams);
        *phGraphNode = (CUgraphNode)n;
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT CUresult cuGraphAddKernelNode(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                     size_t numDependencies, const CUDA_KERNEL_NODE_PARAMS_v1 *nodeParams) {
    if (nodeParams == NULL) return initialized() ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_INITIALIZED;
    return add_kernel_node(phGraphNode, hGraph, dependencies, numDependencies, nodeParams->func,
                           nodeParams->kernelParams);
}

EXPORT CUresult cuGraphAddKernelNode_v2(CUgraphNode *phGraphNode, CUgraph hGraph, const CUgraphNode *dependencies,
                                        size_t numDependencies, const CUDA_KERNEL_NODE_PARAMS_v2 *nodeParams) {
    if (nodeParams == NULL) return initialized() ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_INITIALIZED;
    if (nodeParams->func == NULL) return CUDA_ERROR_NOT_SUPPORTED; /* CUkernel nodes are not simulated */
    return add_kernel_node(phGraphNode, hGraph, dependencies, numDependencies, nodeParams->func,
                           nodeParams->kernelParams);
}

static CUresult instantiate(CUgraphExec *phGraphExec, CUgraph hGraph) {
    REQUIRE_INIT();
    if (phGraphExec == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    sim_obj *g = obj_get(hGraph, OBJ_GRAPH);
    sim_obj *e = g != NULL ? obj_new(OBJ_EXEC, g->device) : NULL;
    if (e != NULL) e->u.graph = g->u.graph; /* an exec is a snapshot of the graph */
    pthread_mutex_unlock(&g_lock);
    if (g == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (e == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    *phGraphExec = (CUgraphExec)e;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                                   char *logBuffer, size_t bufferSize) {
    (void)phErrorNode;
    if (logBuffer != NULL && bufferSize > 0) logBuffer[0] = '\0';
    return instantiate(phGraphExec, hGraph);
}

EXPORT CUresult cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                                      char *logBuffer, size_t bufferSize) {
    (void)phErrorNode;
    if (logBuffer != NULL && bufferSize > 0) logBuffer[0] = '\0';
    return instantiate(phGraphExec, hGraph);
}

EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags) {
    if (flags > 0xf) return initialized() ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_INITIALIZED;
    return instantiate(phGraphExec, hGraph);
}

static CUresult graph_launch(CUgraphExec hGraphExec, CUstream hStream) {
    REQUIRE_INIT();
    int dev;
    CUresult rc = stream_device(hStream, &dev);
    if (rc != CUDA_SUCCESS) return rc;
    count_launch(dev);
    pthread_mutex_lock(&g_lock);
    sim_obj *e = obj_get(hGraphExec, OBJ_EXEC);
    sim_obj copy = {0};
    if (e != NULL) copy = *e;
    pthread_mutex_unlock(&g_lock);
    if (e == NULL) return CUDA_ERROR_INVALID_HANDLE;
    /* Kernel nodes run one after another on the stream's device. */
    return run_kernels(dev, copy.u.graph.dur_ns, copy.u.graph.nodes);
}

EXPORT CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) { return graph_launch(hGraphExec, hStream); }
EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream) {
    return graph_launch(hGraphExec, hStream);
}

static CUresult destroy_obj(const void *handle, obj_kind kind) {
    REQUIRE_INIT();
    pthread_mutex_lock(&g_lock);
    sim_obj *o = obj_get(handle, kind);
    if (o != NULL) o->kind = OBJ_FREE;
    pthread_mutex_unlock(&g_lock);
    return o == NULL ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

EXPORT CUresult cuGraphExecDestroy(CUgraphExec hGraphExec) { return destroy_obj(hGraphExec, OBJ_EXEC); }
EXPORT CUresult cuGraphDestroy(CUgraph hGraph) { return destroy_obj(hGraph, OBJ_GRAPH); }

/* ------------------------------------------------------- entry point access */

/* One row per (base name, variant): the variant a caller gets is the row with
 * the highest `since` not above its cudaVersion; the per-thread-default-stream
 * flag selects `ptsz` where the variant has one. */
typedef struct proc_entry {
    const char *base;
    int since;
    void *fn;
    void *ptsz;
} proc_entry;

#define FN(f) ((void *)(f))

static const proc_entry k_procs[] = {
    {"cuInit", 2000, FN(cuInit), NULL},
    {"cuDriverGetVersion", 2020, FN(cuDriverGetVersion), NULL},
    {"cuGetErrorName", 6000, FN(cuGetErrorName), NULL},
    {"cuGetErrorString", 6000, FN(cuGetErrorString), NULL},
    {"cuGetProcAddress", 11030, FN(cuGetProcAddress), NULL},
    {"cuGetProcAddress", 12000, FN(cuGetProcAddress_v2), NULL},
    {"cuDeviceGet", 2000, FN(cuDeviceGet), NULL},
    {"cuDeviceGetCount", 2000, FN(cuDeviceGetCount), NULL},
    {"cuDeviceGetName", 2000, FN(cuDeviceGetName), NULL},
    {"cuDeviceGetUuid", 9020, FN(cuDeviceGetUuid), NULL},
    {"cuDeviceGetUuid", 11040, FN(cuDeviceGetUuid_v2), NULL},
    {"cuDeviceGetAttribute", 2000, FN(cuDeviceGetAttribute), NULL},
    {"cuDeviceGetPCIBusId", 4010, FN(cuDeviceGetPCIBusId), NULL},
    {"cuDeviceGetByPCIBusId", 4010, FN(cuDeviceGetByPCIBusId), NULL},
    {"cuDeviceTotalMem", 3020, FN(cuDeviceTotalMem_v2), NULL},
    {"cuDevicePrimaryCtxRetain", 7000, FN(cuDevicePrimaryCtxRetain), NULL},
    {"cuDevicePrimaryCtxRelease", 7000, FN(cuDevicePrimaryCtxRelease), NULL},
    {"cuDevicePrimaryCtxRelease", 11000, FN(cuDevicePrimaryCtxRelease_v2), NULL},
    {"cuDevicePrimaryCtxGetState", 7000, FN(cuDevicePrimaryCtxGetState), NULL},
    {"cuCtxCreate", 3020, FN(cuCtxCreate_v2), NULL},
    {"cuCtxDestroy", 4000, FN(cuCtxDestroy_v2), NULL},
    {"cuCtxGetCurrent", 4000, FN(cuCtxGetCurrent), NULL},
    {"cuCtxSetCurrent", 4000, FN(cuCtxSetCurrent), NULL},
    {"cuCtxPushCurrent", 4000, FN(cuCtxPushCurrent_v2), NULL},
    {"cuCtxPopCurrent", 4000, FN(cuCtxPopCurrent_v2), NULL},
    {"cuCtxSynchronize", 2000, FN(cuCtxSynchronize), NULL},
    {"cuCtxGetDevice", 2000, FN(cuCtxGetDevice), NULL},
    {"cuMemAlloc", 3020, FN(cuMemAlloc_v2), NULL},
    {"cuMemAllocPitch", 3020, FN(cuMemAllocPitch_v2), NULL},
    {"cuMemAllocManaged", 6000, FN(cuMemAllocManaged), NULL},
    {"cuMemAllocAsync", 11020, FN(cuMemAllocAsync), FN(cuMemAllocAsync_ptsz)},
    {"cuMemAllocFromPoolAsync", 11020, FN(cuMemAllocFromPoolAsync), FN(cuMemAllocFromPoolAsync_ptsz)},
    {"cuMemFree", 3020, FN(cuMemFree_v2), NULL},
    {"cuMemFreeAsync", 11020, FN(cuMemFreeAsync), FN(cuMemFreeAsync_ptsz)},
    {"cuMemGetInfo", 3020, FN(cuMemGetInfo_v2), NULL},
    {"cuMemPoolCreate", 11020, FN(cuMemPoolCreate), NULL},
    {"cuMemPoolDestroy", 11020, FN(cuMemPoolDestroy), NULL},
    {"cuMemCreate", 10020, FN(cuMemCreate), NULL},
    {"cuMemRelease", 10020, FN(cuMemRelease), NULL},
    {"cuMemAddressReserve", 10020, FN(cuMemAddressReserve), NULL},
    {"cuMemAddressFree", 10020, FN(cuMemAddressFree), NULL},
    {"cuMemMap", 10020, FN(cuMemMap), NULL},
    {"cuMemUnmap", 10020, FN(cuMemUnmap), NULL},
    {"cuMemSetAccess", 10020, FN(cuMemSetAccess), NULL},
    {"cuMemGetAllocationGranularity", 10020, FN(cuMemGetAllocationGranularity), NULL},
    {"cuArrayCreate", 3020, FN(cuArrayCreate_v2), NULL},
    {"cuArray3DCreate", 3020, FN(cuArray3DCreate_v2), NULL},
    {"cuArrayDestroy", 2000, FN(cuArrayDestroy), NULL},
    {"cuMipmappedArrayCreate", 5000, FN(cuMipmappedArrayCreate), NULL},
    {"cuMipmappedArrayDestroy", 5000, FN(cuMipmappedArrayDestroy), NULL},
    {"cuMemcpyHtoD", 3020, FN(cuMemcpyHtoD_v2), FN(cuMemcpyHtoD_v2_ptds)},
    {"cuMemcpyDtoH", 3020, FN(cuMemcpyDtoH_v2), FN(cuMemcpyDtoH_v2_ptds)},
    {"cuModuleLoad", 2000, FN(cuModuleLoad), NULL},
    {"cuModuleLoadData", 2000, FN(cuModuleLoadData), NULL},
    {"cuModuleGetFunction", 2000, FN(cuModuleGetFunction), NULL},
    {"cuModuleUnload", 2000, FN(cuModuleUnload), NULL},
    {"cuStreamCreate", 2000, FN(cuStreamCreate), NULL},
    {"cuStreamDestroy", 4000, FN(cuStreamDestroy_v2), NULL},
    {"cuStreamGetDevice", 12080, FN(cuStreamGetDevice), NULL},
    {"cuStreamSynchronize", 2000, FN(cuStreamSynchronize), FN(cuStreamSynchronize_ptsz)},
    {"cuEventCreate", 2000, FN(cuEventCreate), NULL},
    {"cuEventRecord", 2000, FN(cuEventRecord), FN(cuEventRecord_ptsz)},
    {"cuEventSynchronize", 2000, FN(cuEventSynchronize), NULL},
    {"cuEventElapsedTime", 2000, FN(cuEventElapsedTime), NULL},
    {"cuEventDestroy", 4000, FN(cuEventDestroy_v2), NULL},
    {"cuLaunchKernel", 4000, FN(cuLaunchKernel), FN(cuLaunchKernel_ptsz)},
    {"cuLaunchKernelEx", 11060, FN(cuLaunchKernelEx), FN(cuLaunchKernelEx_ptsz)},
    {"cuLaunchCooperativeKernel", 9000, FN(cuLaunchCooperativeKernel), FN(cuLaunchCooperativeKernel_ptsz)},
    {"cuLaunchCooperativeKernelMultiDevice", 9000, FN(cuLaunchCooperativeKernelMultiDevice), NULL},
    {"cuGraphCreate", 10000, FN(cuGraphCreate), NULL},
    {"cuGraphAddKernelNode", 10000, FN(cuGraphAddKernelNode), NULL},
    {"cuGraphAddKernelNode", 12000, FN(cuGraphAddKernelNode_v2), NULL},
    {"cuGraphInstantiate", 10000, FN(cuGraphInstantiate), NULL},
    {"cuGraphInstantiate", 11000, FN(cuGraphInstantiate_v2), NULL},
    {"cuGraphInstantiate", 12000, FN(cuGraphInstantiateWithFlags), NULL},
    {"cuGraphInstantiateWithFlags", 11040, FN(cuGraphInstantiateWithFlags), NULL},
    {"cuGraphLaunch", 10000, FN(cuGraphLaunch), FN(cuGraphLaunch_ptsz)},
    {"cuGraphExecDestroy", 10000, FN(cuGraphExecDestroy), NULL},
    {"cuGraphDestroy", 10000, FN(cuGraphDestroy), NULL},
};

static CUresult proc_address(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *status) {
    if (initialized()) COUNT(proc_address_calls);
    if (status != NULL) *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    if (symbol == NULL || pfn == NULL || cudaVersion <= 0 ||
        (flags & ~(cuuint64_t)(CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM)) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    *pfn = NULL;
    const proc_entry *best = NULL;
    int known = 0;
    for (size_t i = 0; i < sizeof k_procs / sizeof k_procs[0]; i++) {
        if (strcmp(k_procs[i].base, symbol) != 0) continue;
        known = 1;
        if (k_procs[i].since <= cudaVersion && (best == NULL || k_procs[i].since > best->since)) best = &k_procs[i];
    }
    if (best == NULL) {
        if (status != NULL && known) *status = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
        return CUDA_ERROR_NOT_FOUND;
    }
    int per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    *pfn = per_thread && best->ptsz != NULL ? best->ptsz : best->fn;
    if (status != NULL) *status = CU_GET_PROC_ADDRESS_SUCCESS;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
    return proc_address(symbol, pfn, cudaVersion, flags, NULL);
}

EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *symbolStatus) {
    return proc_address(symbol, pfn, cudaVersion, flags, symbolStatus);
}
