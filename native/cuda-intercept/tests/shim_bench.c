/*
 * omai-shim-bench: a tight loop of one kind of driver call, for counting the
 * instructions the shim adds (test-harness/bench/shim-callgrind.sh runs it
 * with and without the shim, at two loop counts, under callgrind).
 *
 *   omai-shim-bench alloc N      N x (cuMemAlloc_v2 256 B + cuMemFree_v2): accounted pair
 *   omai-shim-bench alloc-only N N x cuMemAlloc_v2 256 B (freed after the loop, outside the count)
 *   omai-shim-bench meminfo N    N x cuMemGetInfo_v2: hooked, virtualised view
 *   omai-shim-bench passthru N   N x cuCtxGetDevice: not hooked, straight to the driver
 *   omai-shim-bench launch N     N x cuLaunchKernel of a 0 us kernel: hooked, one compute charge each
 *   omai-shim-bench pool-on DEVICE BYTES
 *                                with device 0 current, cuMemAllocFromPoolAsync BYTES from a pool
 *                                created on DEVICE: which device's quota pays
 *   omai-shim-bench exec-after-alloc BYTES
 *                                allocate BYTES, then exec itself (alloc 1): the same process,
 *                                a new image; for the shim's slot take-over test
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "omai_cuda.h"

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 4 && strcmp(argv[1], "pool-on") == 0)) {
        fprintf(stderr, "usage: omai-shim-bench alloc|alloc-only|meminfo|passthru|launch N\n");
        return 2;
    }
    long n = atol(argv[2]);
    CUdevice dev;
    CUcontext ctx;
    CUresult rc = cuInit(0);
    if (rc == CUDA_SUCCESS) rc = cuDeviceGet(&dev, 0);
    if (rc == CUDA_SUCCESS) rc = cuDevicePrimaryCtxRetain(&ctx, dev);
    if (rc == CUDA_SUCCESS) rc = cuCtxSetCurrent(ctx);
    if (rc == CUDA_SUCCESS && strcmp(argv[1], "pool-on") == 0) {
        if (argc != 4) {
            fprintf(stderr, "usage: omai-shim-bench pool-on DEVICE BYTES\n");
            return 2;
        }
        CUmemPoolProps props;
        memset(&props, 0, sizeof props);
        props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
        props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        props.location.id = (int)n;
        CUmemoryPool pool;
        CUdeviceptr p;
        rc = cuMemPoolCreate(&pool, &props);
        if (rc == CUDA_SUCCESS) rc = cuMemAllocFromPoolAsync(&p, (size_t)strtoull(argv[3], NULL, 10), pool, NULL);
        printf("result op=pool-alloc device=%ld status=%d\n", n, (int)rc);
        if (rc == CUDA_SUCCESS) rc = cuMemFreeAsync(p, NULL);
        if (rc == CUDA_SUCCESS) rc = cuStreamSynchronize(NULL);
        return rc == CUDA_SUCCESS ? 0 : 1;
    }
    /* One warm-up call of each kind so one-time set-up is outside the loop. */
    CUdeviceptr p;
    if (rc == CUDA_SUCCESS) rc = cuMemAlloc_v2(&p, 256);
    if (rc == CUDA_SUCCESS) rc = cuMemFree_v2(p);
    size_t f, t;
    if (rc == CUDA_SUCCESS) rc = cuMemGetInfo_v2(&f, &t);
    /* The simulator runs any function for the microseconds in its first parameter: 0 here. */
    static const char image[] = "omai-shim-bench";
    CUmodule module;
    CUfunction fn;
    unsigned int usec = 0;
    void *params[] = {&usec};
    if (rc == CUDA_SUCCESS) rc = cuModuleLoadData(&module, image);
    if (rc == CUDA_SUCCESS) rc = cuModuleGetFunction(&fn, module, "spin");
    if (rc == CUDA_SUCCESS) rc = cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL);
    if (rc != CUDA_SUCCESS) {
        fprintf(stderr, "omai-shim-bench: set-up failed with CUresult %d\n", (int)rc);
        return 1;
    }
    if (strcmp(argv[1], "exec-after-alloc") == 0) {
        CUdeviceptr held;
        rc = cuMemAlloc_v2(&held, (size_t)n);
        printf("result op=alloc bytes=%ld status=%d\n", n, (int)rc);
        fflush(stdout);
        if (rc != CUDA_SUCCESS) return 1;
        char *again[] = {argv[0], "alloc", "1", NULL};
        execv("/proc/self/exe", again);
        perror("omai-shim-bench: execv /proc/self/exe");
        return 1;
    }
    if (strcmp(argv[1], "alloc") == 0) {
        for (long i = 0; i < n && rc == CUDA_SUCCESS; i++) {
            rc = cuMemAlloc_v2(&p, 256);
            if (rc == CUDA_SUCCESS) rc = cuMemFree_v2(p);
        }
    } else if (strcmp(argv[1], "alloc-only") == 0) {
        for (long i = 0; i < n && rc == CUDA_SUCCESS; i++) rc = cuMemAlloc_v2(&p, 256);
    } else if (strcmp(argv[1], "meminfo") == 0) {
        for (long i = 0; i < n && rc == CUDA_SUCCESS; i++) rc = cuMemGetInfo_v2(&f, &t);
    } else if (strcmp(argv[1], "launch") == 0) {
        for (long i = 0; i < n && rc == CUDA_SUCCESS; i++) rc = cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL);
    } else if (strcmp(argv[1], "passthru") == 0) {
        for (long i = 0; i < n && rc == CUDA_SUCCESS; i++) rc = cuCtxGetDevice(&dev);
    } else {
        fprintf(stderr, "omai-shim-bench: unknown mode %s (expected alloc, alloc-only, meminfo, passthru or launch)\n", argv[1]);
        return 2;
    }
    if (rc != CUDA_SUCCESS) {
        fprintf(stderr, "omai-shim-bench: loop failed with CUresult %d\n", (int)rc);
        return 1;
    }
    return 0;
}
