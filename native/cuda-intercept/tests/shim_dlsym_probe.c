/*
 * omai-shim-dlsym-probe: reaches the driver through dlopen + dlsym, as
 * frameworks that load libcuda themselves do, and reports which library each
 * pointer it got belongs to, so tests can see the pointer-identity mapping.
 *
 *   omai-shim-dlsym-probe NAME...     result op=dlsym name=NAME lib=FILE symbol=SYM
 *   omai-shim-dlsym-probe --getproc VERSION FLAGS NAME...
 *                                     the same for what cuGetProcAddress_v2 (found by
 *                                     dlsym) returns: result op=getproc name=... lib=...
 *   omai-shim-dlsym-probe --alloc BYTES...   cuMemAlloc_v2 through dlsym, in order
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omai_cuda.h"

typedef CUresult (*init_fn)(unsigned);
typedef CUresult (*dev_get_fn)(CUdevice *, int);
typedef CUresult (*retain_fn)(CUcontext *, CUdevice);
typedef CUresult (*set_fn)(CUcontext);
typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t);
typedef CUresult (*getproc_fn)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);

/* Prints which library and symbol p is. */
static void where(const char *op, const char *name, void *p) {
    Dl_info info;
    if (!p || !dladdr(p, &info) || !info.dli_fname) {
        printf("result op=%s name=%s lib=none symbol=none\n", op, name);
        return;
    }
    char file[4096];
    snprintf(file, sizeof file, "%s", info.dli_fname);
    printf("result op=%s name=%s lib=%s symbol=%s\n", op, name, basename(file),
           info.dli_sname ? info.dli_sname : "none");
}

int main(int argc, char **argv) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "omai-shim-dlsym-probe: %s\n", dlerror());
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--alloc") == 0) {
        init_fn init = (init_fn)dlsym(h, "cuInit");
        dev_get_fn get = (dev_get_fn)dlsym(h, "cuDeviceGet");
        retain_fn retain = (retain_fn)dlsym(h, "cuDevicePrimaryCtxRetain");
        set_fn set = (set_fn)dlsym(h, "cuCtxSetCurrent");
        alloc_fn alloc = (alloc_fn)dlsym(h, "cuMemAlloc_v2");
        CUdevice dev;
        CUcontext ctx;
        CUresult rc = init && get && retain && set && alloc ? init(0) : CUDA_ERROR_NOT_FOUND;
        if (rc == CUDA_SUCCESS) rc = get(&dev, 0);
        if (rc == CUDA_SUCCESS) rc = retain(&ctx, dev);
        if (rc == CUDA_SUCCESS) rc = set(ctx);
        printf("result op=init status=%d\n", (int)rc);
        for (int i = 2; i < argc && rc == CUDA_SUCCESS; i++) {
            CUdeviceptr p;
            uint64_t bytes = strtoull(argv[i], NULL, 10);
            printf("result op=alloc bytes=%" PRIu64 " status=%d\n", bytes, (int)alloc(&p, (size_t)bytes));
        }
        return rc == CUDA_SUCCESS ? 0 : 1;
    }
    if (argc > 3 && strcmp(argv[1], "--getproc") == 0) {
        getproc_fn getproc = (getproc_fn)dlsym(h, "cuGetProcAddress_v2");
        init_fn init = (init_fn)dlsym(h, "cuInit");
        if (!getproc || !init || init(0) != CUDA_SUCCESS) {
            fprintf(stderr, "omai-shim-dlsym-probe: no cuGetProcAddress_v2/cuInit, or cuInit failed\n");
            return 1;
        }
        int version = atoi(argv[2]);
        cuuint64_t flags = strtoull(argv[3], NULL, 0);
        for (int i = 4; i < argc; i++) {
            void *p = NULL;
            CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
            CUresult rc = getproc(argv[i], &p, version, flags, &st);
            if (rc != CUDA_SUCCESS) {
                printf("result op=getproc name=%s status=%d symbol_status=%d lib=none symbol=none\n", argv[i],
                       (int)rc, (int)st);
            } else {
                where("getproc", argv[i], p);
            }
        }
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        where("dlsym", argv[i], dlsym(h, argv[i]));
    }
    return 0;
}
