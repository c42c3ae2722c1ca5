/*
 * omai-cudart-loader: finds driver entry points the way the CUDA runtime
 * does since CUDA 11.3 - dlopen("libcuda.so.1"), dlsym of cuGetProcAddress_v2
 * only, then every other function through it by BASE name with a
 * cudaVersion - so tests can prove the shim catches that route.
 *
 *   omai-cudart-loader [--cuda-version V] [--per-thread] OP...
 *     resolve NAME [VERSION]   print what cuGetProcAddress_v2 returns for NAME:
 *                              status, symbolStatus and the symbol the pointer is (dladdr)
 *     alloc BYTES | free | meminfo | launch COUNT USEC | counters
 *
 * --per-thread passes CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, as a
 * runtime built with --default-stream per-thread does.
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omai_cuda.h"
#include "omai_sim.h"
#include "workload_util.h"

typedef CUresult (*get_proc_fn)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);

static get_proc_fn g_get_proc;
static int g_version = 12080;
static cuuint64_t g_flags = CU_GET_PROC_ADDRESS_DEFAULT;
static int g_failed;

static void usage(const char *why) {
    fprintf(stderr, "omai-cudart-loader: %s\n"
                    "usage: omai-cudart-loader [--cuda-version V] [--per-thread] OP...\n"
                    "  resolve NAME [VERSION] | alloc BYTES | free | meminfo | launch COUNT USEC | counters\n",
            why);
    exit(2);
}

/* Resolves base name or dies: the runtime cannot continue without it. */
static void *entry(const char *base) {
    void *fn = NULL;
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    CUresult rc = g_get_proc(base, &fn, g_version, g_flags, &st);
    if (rc != CUDA_SUCCESS || fn == NULL) {
        emit("op=entry name=%s status=%d symbol_status=%d", base, (int)rc, (int)st);
        exit(1);
    }
    return fn;
}

#define ENTRY(type, name) ((type)entry(name))

typedef CUresult (*init_fn)(unsigned);
typedef CUresult (*err_name_fn)(CUresult, const char **);
typedef CUresult (*dev_get_fn)(CUdevice *, int);
typedef CUresult (*retain_fn)(CUcontext *, CUdevice);
typedef CUresult (*set_ctx_fn)(CUcontext);
typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*free_fn)(CUdeviceptr);
typedef CUresult (*info_fn)(size_t *, size_t *);
typedef CUresult (*load_fn)(CUmodule *, const void *);
typedef CUresult (*getfn_fn)(CUfunction *, CUmodule, const char *);
typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              CUstream, void **, void **);
typedef CUresult (*sync_fn)(void);

static const char *status_name(CUresult rc) {
    const char *name = NULL;
    if (ENTRY(err_name_fn, "cuGetErrorName")(rc, &name) != CUDA_SUCCESS || name == NULL)
        return "CUDA_ERROR_UNRECOGNIZED";
    return name;
}

static const char *symbol_of(void *fn) {
    Dl_info info;
    if (fn == NULL || dladdr(fn, &info) == 0 || info.dli_sname == NULL) return "none";
    return info.dli_sname;
}

static int g_ready;
static CUfunction g_fn;

static CUresult ready(void) {
    if (g_ready) return CUDA_SUCCESS;
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    static const char image[] = "omai-sim module image";
    CUresult rc = ENTRY(init_fn, "cuInit")(0);
    if (rc == CUDA_SUCCESS) rc = ENTRY(dev_get_fn, "cuDeviceGet")(&dev, 0);
    if (rc == CUDA_SUCCESS) rc = ENTRY(retain_fn, "cuDevicePrimaryCtxRetain")(&ctx, dev);
    if (rc == CUDA_SUCCESS) rc = ENTRY(set_ctx_fn, "cuCtxSetCurrent")(ctx);
    if (rc == CUDA_SUCCESS) rc = ENTRY(load_fn, "cuModuleLoadData")(&mod, image);
    if (rc == CUDA_SUCCESS) rc = ENTRY(getfn_fn, "cuModuleGetFunction")(&g_fn, mod, "omai_busy_kernel");
    emit("op=init version=%d flags=%" PRIu64 " status=%s", g_version, (uint64_t)g_flags, status_name(rc));
    if (rc != CUDA_SUCCESS) exit(1);
    g_ready = 1;
    return rc;
}

int main(int argc, char **argv) {
    int i = 1;
    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        double v;
        if (strcmp(argv[i], "--per-thread") == 0) {
            g_flags = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
            i++;
        } else if (strcmp(argv[i], "--cuda-version") == 0 && i + 1 < argc &&
                   parse_number(argv[i + 1], 1, 99990, &v) == 0) {
            g_version = (int)v;
            i += 2;
        } else {
            usage("bad option (expected --cuda-version V or --per-thread)");
        }
    }
    if (i >= argc) usage("no operation given");

    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "omai-cudart-loader: %s\n", dlerror());
        return 1;
    }
    void *sym = dlsym(lib, "cuGetProcAddress_v2");
    if (sym == NULL) {
        fprintf(stderr, "omai-cudart-loader: libcuda.so.1 has no cuGetProcAddress_v2\n");
        return 1;
    }
    memcpy(&g_get_proc, &sym, sizeof sym); /* object pointer -> function pointer, as dlsym requires */

    CUdeviceptr held[256];
    int nheld = 0;
    while (i < argc) {
        const char *op = argv[i++];
        if (strcmp(op, "resolve") == 0) {
            if (i >= argc) usage("resolve needs NAME");
            const char *name = argv[i++];
            double v = g_version;
            if (i < argc && parse_number(argv[i], 1, 99990, &v) == 0) i++;
            void *fn = NULL;
            CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
            CUresult rc = g_get_proc(name, &fn, (int)v, g_flags, &st);
            emit("op=resolve name=%s version=%d flags=%" PRIu64 " status=%d symbol_status=%d symbol=%s", name, (int)v,
                 (uint64_t)g_flags, (int)rc, (int)st, symbol_of(fn));
        } else if (strcmp(op, "alloc") == 0) {
            uint64_t bytes;
            if (i >= argc || parse_size(argv[i], &bytes) != 0) usage("alloc needs BYTES");
            i++;
            ready();
            CUdeviceptr p = 0;
            CUresult rc = ENTRY(alloc_fn, "cuMemAlloc")(&p, (size_t)bytes);
            if (rc == CUDA_SUCCESS && nheld < 256) held[nheld++] = p;
            if (rc != CUDA_SUCCESS) g_failed = 1;
            emit("op=alloc route=get-proc-address bytes=%" PRIu64 " status=%s", bytes, status_name(rc));
        } else if (strcmp(op, "free") == 0) {
            ready();
            CUresult rc = CUDA_SUCCESS;
            for (int k = 0; k < nheld; k++) {
                CUresult one = ENTRY(free_fn, "cuMemFree")(held[k]);
                if (one != CUDA_SUCCESS) rc = one;
            }
            emit("op=free count=%d status=%s", nheld, status_name(rc));
            nheld = 0;
        } else if (strcmp(op, "meminfo") == 0) {
            ready();
            size_t f = 0, t = 0;
            CUresult rc = ENTRY(info_fn, "cuMemGetInfo")(&f, &t);
            emit("op=meminfo free=%zu total=%zu status=%s", f, t, status_name(rc));
        } else if (strcmp(op, "launch") == 0) {
            double count, usec;
            if (i + 2 > argc || parse_number(argv[i], 0, 1e9, &count) != 0 || parse_number(argv[i + 1], 0, 4e9, &usec) != 0)
                usage("launch needs COUNT USEC");
            i += 2;
            ready();
            /* Resolved once, as cudart caches it; with --per-thread this is cuLaunchKernel_ptsz. */
            launch_fn launch = ENTRY(launch_fn, "cuLaunchKernel");
            uint32_t us = (uint32_t)usec;
            void *params[] = {&us};
            uint64_t t0 = mono_ns();
            CUresult rc = CUDA_SUCCESS;
            for (uint64_t k = 0; k < (uint64_t)count && rc == CUDA_SUCCESS; k++)
                rc = launch(g_fn, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL);
            if (rc == CUDA_SUCCESS) rc = ENTRY(sync_fn, "cuCtxSynchronize")();
            if (rc != CUDA_SUCCESS) g_failed = 1;
            emit("op=launch route=get-proc-address symbol=%s count=%.0f usec=%.0f elapsed_us=%" PRIu64 " status=%s",
                 symbol_of((void *)launch), count, usec, (mono_ns() - t0) / 1000, status_name(rc));
        } else if (strcmp(op, "counters") == 0) {
            ready();
            void *c_sym = dlsym(lib, "omaiSimGetCounters"); /* test-only, not a driver entry point */
            omai_sim_counters c;
            CUresult (*fn)(omai_sim_counters *, size_t) = NULL;
            if (c_sym != NULL) memcpy(&fn, &c_sym, sizeof c_sym);
            CUresult rc = fn != NULL ? fn(&c, sizeof c) : CUDA_ERROR_NOT_FOUND;
            if (rc != CUDA_SUCCESS) {
                emit("op=counters status=%s", status_name(rc));
                g_failed = 1;
            } else {
                emit("op=counters alloc_calls=%" PRIu64 " launch_calls=%" PRIu64 " kernels_run=%" PRIu64
                     " proc_address_calls=%" PRIu64 " status=CUDA_SUCCESS",
                     c.alloc_calls, c.launch_calls, c.kernels_run, c.proc_address_calls);
            }
        } else {
            usage("unknown operation");
        }
    }
    return g_failed ? 1 : 0;
}
