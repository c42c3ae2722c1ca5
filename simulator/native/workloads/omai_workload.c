/*
 * omai-workload: a CUDA driver-API program for tests, linked with -lcuda like
 * a real application. It runs the operations given on its command line in
 * order and prints one `result op=... status=CUDA_...` line per operation.
 *
 *   omai-workload [--device N] [--context primary|create] [--mip-levels L] OP...
 *     alloc ROUTE BYTES          ROUTE: alloc pitch managed async pool vmm array array3d mipmap
 *     free                       free everything allocated so far, each by its route's call
 *     meminfo                    cuMemGetInfo_v2
 *     totalmem                   cuDeviceTotalMem_v2
 *     launch ROUTE COUNT USEC    ROUTE: kernel kernel-ex cooperative multi-device graph ptsz
 *     duty ROUTE SECONDS PERCENT [PERIOD_MS]   busy PERCENT of every period for SECONDS
 *     sleep SECONDS              keep running (allocations stay held)
 *     counters                   the simulator's omaiSimGetCounters, if the driver has it
 *     fork-alloc BYTES           fork; the child allocates BYTES (after its own cuInit) and exits
 *
 * Exit status: 0 if every operation succeeded, 1 if one failed, 2 on bad usage.
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "omai_cuda.h"
#include "omai_sim.h"
#include "workload_util.h"

#define MAX_ALLOCS 1024

typedef enum route { R_ALLOC, R_PITCH, R_MANAGED, R_ASYNC, R_POOL, R_VMM, R_ARRAY, R_ARRAY3D, R_MIPMAP } route;
static const char *const k_alloc_routes[] = {"alloc", "pitch", "managed", "async", "pool",
                                             "vmm", "array", "array3d", "mipmap"};

typedef enum launch_route { L_KERNEL, L_KERNEL_EX, L_COOPERATIVE, L_MULTI_DEVICE, L_GRAPH, L_PTSZ } launch_route;
static const char *const k_launch_routes[] = {"kernel", "kernel-ex", "cooperative", "multi-device", "graph", "ptsz"};

typedef struct held {
    route r;
    CUdeviceptr ptr;
    CUmemGenericAllocationHandle handle;
    size_t size;
    CUarray array;
    CUmipmappedArray mipmap;
} held;

static held g_held[MAX_ALLOCS];
static int g_nheld;
static CUdevice g_dev;
static CUstream g_stream;
static CUmemoryPool g_pool;
static CUfunction g_fn;
static unsigned g_mip_levels = 1;
static int g_failed;

static const char *status_name(CUresult rc) {
    const char *name = NULL;
    if (cuGetErrorName(rc, &name) != CUDA_SUCCESS || name == NULL) return "CUDA_ERROR_UNRECOGNIZED";
    return name;
}

static CUresult note(CUresult rc) {
    if (rc != CUDA_SUCCESS) g_failed = 1;
    return rc;
}

static void usage(const char *why) {
    fprintf(stderr, "omai-workload: %s\n"
                    "usage: omai-workload [--device N] [--context primary|create] [--mip-levels L] OP...\n"
                    "  alloc ROUTE BYTES   (alloc pitch managed async pool vmm array array3d mipmap)\n"
                    "  free | meminfo | totalmem | counters | sleep SECONDS | fork-alloc BYTES\n"
                    "  launch ROUTE COUNT USEC   (kernel kernel-ex cooperative multi-device graph ptsz)\n"
                    "  duty ROUTE SECONDS PERCENT [PERIOD_MS]\n",
            why);
    exit(2);
}

static int lookup(const char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

/* -------------------------------------------------------------- allocation */

static CUresult alloc_vmm(held *h, uint64_t bytes) {
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = g_dev;
    size_t gran = 0;
    CUresult rc = cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    if (rc != CUDA_SUCCESS) return rc;
    h->size = (size_t)((bytes + gran - 1) / gran * gran);
    if ((rc = cuMemCreate(&h->handle, h->size, &prop, 0)) != CUDA_SUCCESS) return rc;
    if ((rc = cuMemAddressReserve(&h->ptr, h->size, 0, 0, 0)) != CUDA_SUCCESS) {
        cuMemRelease(h->handle);
        return rc;
    }
    CUmemAccessDesc access = {.location = prop.location, .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    if ((rc = cuMemMap(h->ptr, h->size, 0, h->handle, 0)) != CUDA_SUCCESS ||
        (rc = cuMemSetAccess(h->ptr, h->size, &access, 1)) != CUDA_SUCCESS) {
        cuMemAddressFree(h->ptr, h->size);
        cuMemRelease(h->handle);
    }
    return rc;
}

static CUresult do_alloc(route r, uint64_t bytes, held *h) {
    memset(h, 0, sizeof *h);
    h->r = r;
    h->size = (size_t)bytes;
    size_t elements = (size_t)(bytes / 4); /* arrays: 1-channel float */
    switch (r) {
    case R_ALLOC: return cuMemAlloc_v2(&h->ptr, h->size);
    case R_PITCH: {
        /* 4 KiB rows when the size allows, so the charge equals the request. */
        size_t width = bytes % 4096 == 0 ? 4096 : (size_t)bytes, height = (size_t)bytes / width, pitch = 0;
        return cuMemAllocPitch_v2(&h->ptr, &pitch, width, height, 4);
    }
    case R_MANAGED: return cuMemAllocManaged(&h->ptr, h->size, CU_MEM_ATTACH_GLOBAL);
    case R_ASYNC: return cuMemAllocAsync(&h->ptr, h->size, g_stream);
    case R_POOL: return cuMemAllocFromPoolAsync(&h->ptr, h->size, g_pool, g_stream);
    case R_VMM: return alloc_vmm(h, bytes);
    case R_ARRAY: {
        CUDA_ARRAY_DESCRIPTOR d = {.Width = elements, .Height = 0, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
        return cuArrayCreate_v2(&h->array, &d);
    }
    case R_ARRAY3D: {
        CUDA_ARRAY3D_DESCRIPTOR d = {.Width = elements, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
        return cuArray3DCreate_v2(&h->array, &d);
    }
    case R_MIPMAP: {
        CUDA_ARRAY3D_DESCRIPTOR d = {.Width = elements, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
        return cuMipmappedArrayCreate(&h->mipmap, &d, g_mip_levels);
    }
    }
    return CUDA_ERROR_INVALID_VALUE;
}

static CUresult do_free(const held *h) {
    switch (h->r) {
    case R_ALLOC:
    case R_PITCH:
    case R_MANAGED: return cuMemFree_v2(h->ptr);
    case R_ASYNC:
    case R_POOL: {
        CUresult rc = cuMemFreeAsync(h->ptr, g_stream);
        return rc == CUDA_SUCCESS ? cuStreamSynchronize(g_stream) : rc;
    }
    case R_VMM: {
        CUresult rc = cuMemUnmap(h->ptr, h->size);
        if (rc == CUDA_SUCCESS) rc = cuMemAddressFree(h->ptr, h->size);
        if (rc == CUDA_SUCCESS) rc = cuMemRelease(h->handle);
        return rc;
    }
    case R_ARRAY:
    case R_ARRAY3D: return cuArrayDestroy(h->array);
    case R_MIPMAP: return cuMipmappedArrayDestroy(h->mipmap);
    }
    return CUDA_ERROR_INVALID_VALUE;
}

/* ------------------------------------------------------------------ launches */

static CUresult launch_once(launch_route r, uint32_t usec) {
    void *params[] = {&usec};
    switch (r) {
    case L_KERNEL: return cuLaunchKernel(g_fn, 1, 1, 1, 32, 1, 1, 0, g_stream, params, NULL);
    case L_PTSZ: return cuLaunchKernel_ptsz(g_fn, 1, 1, 1, 32, 1, 1, 0, CU_STREAM_PER_THREAD, params, NULL);
    case L_KERNEL_EX: {
        CUlaunchAttribute attr;
        memset(&attr, 0, sizeof attr);
        attr.id = CU_LAUNCH_ATTRIBUTE_PRIORITY;
        attr.value.priority = 0;
        CUlaunchConfig cfg = {.gridDimX = 1, .gridDimY = 1, .gridDimZ = 1, .blockDimX = 32, .blockDimY = 1,
                              .blockDimZ = 1, .hStream = g_stream, .attrs = &attr, .numAttrs = 1};
        return cuLaunchKernelEx(&cfg, g_fn, params, NULL);
    }
    case L_COOPERATIVE: return cuLaunchCooperativeKernel(g_fn, 1, 1, 1, 32, 1, 1, 0, g_stream, params);
    case L_MULTI_DEVICE: {
        CUDA_LAUNCH_PARAMS p = {.function = g_fn, .gridDimX = 1, .gridDimY = 1, .gridDimZ = 1, .blockDimX = 32,
                                .blockDimY = 1, .blockDimZ = 1, .hStream = g_stream, .kernelParams = params};
        return cuLaunchCooperativeKernelMultiDevice(&p, 1, 0);
    }
    case L_GRAPH: {
        CUgraph graph;
        CUgraphNode node;
        CUgraphExec exec;
        CUDA_KERNEL_NODE_PARAMS_v2 np;
        memset(&np, 0, sizeof np);
        np.func = g_fn;
        np.gridDimX = np.gridDimY = np.gridDimZ = 1;
        np.blockDimX = 32;
        np.blockDimY = np.blockDimZ = 1;
        np.kernelParams = params;
        CUresult rc = cuGraphCreate(&graph, 0);
        if (rc != CUDA_SUCCESS) return rc;
        if ((rc = cuGraphAddKernelNode_v2(&node, graph, NULL, 0, &np)) == CUDA_SUCCESS &&
            (rc = cuGraphInstantiateWithFlags(&exec, graph, 0)) == CUDA_SUCCESS) {
            rc = cuGraphLaunch(exec, g_stream);
            cuGraphExecDestroy(exec);
        }
        cuGraphDestroy(graph);
        return rc;
    }
    }
    return CUDA_ERROR_INVALID_VALUE;
}

static CUresult sync_stream(launch_route r) {
    return r == L_PTSZ ? cuStreamSynchronize_ptsz(CU_STREAM_PER_THREAD) : cuStreamSynchronize(g_stream);
}

/* ------------------------------------------------------------------- setup */

static CUresult setup(const char *context_mode) {
    CUresult rc = cuInit(0);
    CUcontext ctx;
    if (rc == CUDA_SUCCESS) rc = cuDeviceGet(&g_dev, g_dev);
    if (rc == CUDA_SUCCESS) {
        if (strcmp(context_mode, "create") == 0) {
            rc = cuCtxCreate_v2(&ctx, 0, g_dev);
        } else {
            rc = cuDevicePrimaryCtxRetain(&ctx, g_dev);
            if (rc == CUDA_SUCCESS) rc = cuCtxSetCurrent(ctx);
        }
    }
    if (rc == CUDA_SUCCESS) rc = cuStreamCreate(&g_stream, CU_STREAM_NON_BLOCKING);
    if (rc == CUDA_SUCCESS) {
        CUmemPoolProps props;
        memset(&props, 0, sizeof props);
        props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
        props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        props.location.id = g_dev;
        rc = cuMemPoolCreate(&g_pool, &props);
    }
    CUmodule mod;
    static const char image[] = "omai-sim module image";
    if (rc == CUDA_SUCCESS) rc = cuModuleLoadData(&mod, image);
    if (rc == CUDA_SUCCESS) rc = cuModuleGetFunction(&g_fn, mod, "omai_busy_kernel");
    return rc;
}

static void print_counters(void) {
    /* Looked up at run time: a real driver has no such function. */
    typedef CUresult (*counters_fn)(omai_sim_counters *, size_t);
    counters_fn fn = (counters_fn)dlsym(RTLD_DEFAULT, "omaiSimGetCounters");
    if (fn == NULL) {
        emit("op=counters status=CUDA_ERROR_NOT_FOUND");
        g_failed = 1;
        return;
    }
    omai_sim_counters c;
    CUresult rc = note(fn(&c, sizeof c));
    if (rc != CUDA_SUCCESS) {
        emit("op=counters status=%s", status_name(rc));
        return;
    }
    emit("op=counters alloc_calls=%" PRIu64 " alloc_failures=%" PRIu64 " free_calls=%" PRIu64
         " launch_calls=%" PRIu64 " kernels_run=%" PRIu64 " busy_us=%" PRIu64 " mem_info_calls=%" PRIu64
         " proc_address_calls=%" PRIu64 " status=CUDA_SUCCESS",
         c.alloc_calls, c.alloc_failures, c.free_calls, c.launch_calls, c.kernels_run, c.busy_ns / 1000,
         c.mem_info_calls, c.proc_address_calls);
}

int main(int argc, char **argv) {
    const char *context_mode = "primary";
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc) usage("option without a value");
        double v;
        if (strcmp(argv[i], "--device") == 0 && parse_number(argv[i + 1], 0, 63, &v) == 0) {
            g_dev = (CUdevice)v;
        } else if (strcmp(argv[i], "--context") == 0 &&
                   (strcmp(argv[i + 1], "primary") == 0 || strcmp(argv[i + 1], "create") == 0)) {
            context_mode = argv[i + 1];
        } else if (strcmp(argv[i], "--mip-levels") == 0 && parse_number(argv[i + 1], 1, 64, &v) == 0) {
            g_mip_levels = (unsigned)v;
        } else {
            usage("bad option (expected --device N, --context primary|create or --mip-levels L)");
        }
    }
    if (i >= argc) usage("no operation given");
    CUresult rc = setup(context_mode);
    emit("op=init device=%d pid=%d status=%s", g_dev, (int)getpid(), status_name(rc));
    if (rc != CUDA_SUCCESS) {
        /* Shows what every later call gets after a failed cuInit. */
        int count = 0;
        emit("op=device-count status=%s", status_name(cuDeviceGetCount(&count)));
        return 1;
    }

    while (i < argc) {
        const char *op = argv[i++];
        if (strcmp(op, "alloc") == 0) {
            if (i + 2 > argc) usage("alloc needs ROUTE BYTES");
            int r = lookup(k_alloc_routes, 9, argv[i]);
            uint64_t bytes;
            if (r < 0) usage("unknown alloc route");
            if (parse_size(argv[i + 1], &bytes) != 0) usage("bad BYTES (expected e.g. 1048576, 64MiB, 2GiB)");
            i += 2;
            if (g_nheld == MAX_ALLOCS) usage("too many allocations");
            rc = note(do_alloc((route)r, bytes, &g_held[g_nheld]));
            if (rc == CUDA_SUCCESS) g_nheld++;
            emit("op=alloc route=%s bytes=%" PRIu64 " status=%s", k_alloc_routes[r], bytes, status_name(rc));
        } else if (strcmp(op, "free") == 0) {
            int freed = 0;
            rc = CUDA_SUCCESS;
            for (int k = g_nheld - 1; k >= 0; k--) {
                CUresult one = do_free(&g_held[k]);
                if (one == CUDA_SUCCESS) freed++;
                else rc = one;
            }
            g_nheld = 0;
            emit("op=free count=%d status=%s", freed, status_name(note(rc)));
        } else if (strcmp(op, "meminfo") == 0) {
            size_t free_b = 0, total_b = 0;
            rc = note(cuMemGetInfo_v2(&free_b, &total_b));
            emit("op=meminfo free=%zu total=%zu status=%s", free_b, total_b, status_name(rc));
        } else if (strcmp(op, "totalmem") == 0) {
            size_t total_b = 0;
            rc = note(cuDeviceTotalMem_v2(&total_b, g_dev));
            emit("op=totalmem total=%zu status=%s", total_b, status_name(rc));
        } else if (strcmp(op, "launch") == 0) {
            if (i + 3 > argc) usage("launch needs ROUTE COUNT USEC");
            int r = lookup(k_launch_routes, 6, argv[i]);
            double count, usec;
            if (r < 0) usage("unknown launch route");
            if (parse_number(argv[i + 1], 0, 1e9, &count) != 0 || parse_number(argv[i + 2], 0, 4e9, &usec) != 0)
                usage("bad COUNT or USEC");
            i += 3;
            uint64_t t0 = mono_ns();
            rc = CUDA_SUCCESS;
            for (uint64_t k = 0; k < (uint64_t)count && rc == CUDA_SUCCESS; k++)
                rc = launch_once((launch_route)r, (uint32_t)usec);
            if (rc == CUDA_SUCCESS) rc = sync_stream((launch_route)r);
            note(rc);
            emit("op=launch route=%s count=%.0f usec=%.0f elapsed_us=%" PRIu64 " status=%s", k_launch_routes[r],
                 count, usec, (mono_ns() - t0) / 1000, status_name(rc));
        } else if (strcmp(op, "duty") == 0) {
            if (i + 3 > argc) usage("duty needs ROUTE SECONDS PERCENT [PERIOD_MS]");
            int r = lookup(k_launch_routes, 6, argv[i]);
            double seconds, percent, period_ms = 10;
            if (r < 0) usage("unknown launch route");
            if (parse_number(argv[i + 1], 0, 3600, &seconds) != 0 || parse_number(argv[i + 2], 0, 100, &percent) != 0)
                usage("bad SECONDS or PERCENT");
            i += 3;
            if (i < argc && parse_number(argv[i], 1, 10000, &period_ms) == 0) i++;
            /* Periods on a fixed grid: a kernel that started late does not
             * shift the later ones, so busy time = kernels x kernel length. */
            uint64_t period = (uint64_t)(period_ms * 1e6), t0 = mono_ns(), end = t0 + (uint64_t)(seconds * 1e9);
            uint32_t usec = (uint32_t)(period_ms * 1000 * percent / 100);
            uint64_t kernels = 0;
            rc = CUDA_SUCCESS;
            for (uint64_t k = 0; t0 + k * period < end && rc == CUDA_SUCCESS; k++) {
                sleep_until_ns(t0 + k * period);
                if (usec > 0) {
                    rc = launch_once((launch_route)r, usec);
                    kernels++;
                }
            }
            if (rc == CUDA_SUCCESS) rc = sync_stream((launch_route)r);
            note(rc);
            emit("op=duty route=%s seconds=%g percent=%g period_ms=%g kernels=%" PRIu64 " busy_us=%" PRIu64
                 " elapsed_us=%" PRIu64 " status=%s",
                 k_launch_routes[r], seconds, percent, period_ms, kernels, kernels * usec, (mono_ns() - t0) / 1000,
                 status_name(rc));
        } else if (strcmp(op, "sleep") == 0) {
            double seconds;
            if (i >= argc || parse_number(argv[i], 0, 86400, &seconds) != 0) usage("sleep needs SECONDS");
            i++;
            sleep_until_ns(mono_ns() + (uint64_t)(seconds * 1e9));
            emit("op=sleep seconds=%g status=CUDA_SUCCESS", seconds);
        } else if (strcmp(op, "fork-alloc") == 0) {
            uint64_t bytes;
            if (i >= argc || parse_size(argv[i], &bytes) != 0) usage("fork-alloc needs BYTES");
            i++;
            fflush(stdout);
            pid_t child = fork();
            if (child == 0) {
                /* A forked child must cuInit again before it may use the driver. */
                CUdeviceptr p = 0;
                CUcontext ctx;
                emit("op=fork-child-before-init pid=%d status=%s", (int)getpid(), status_name(cuMemAlloc_v2(&p, 1)));
                CUresult crc = cuInit(0);
                if (crc == CUDA_SUCCESS) crc = cuDevicePrimaryCtxRetain(&ctx, g_dev);
                if (crc == CUDA_SUCCESS) crc = cuCtxSetCurrent(ctx);
                if (crc == CUDA_SUCCESS) crc = cuMemAlloc_v2(&p, (size_t)bytes);
                emit("op=fork-child-alloc pid=%d bytes=%" PRIu64 " status=%s", (int)getpid(), bytes, status_name(crc));
                _exit(crc == CUDA_SUCCESS ? 0 : 1); /* exits holding the memory: it must be reaped */
            }
            int wstatus = 0;
            rc = child > 0 && waitpid(child, &wstatus, 0) == child && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0
                     ? CUDA_SUCCESS : CUDA_ERROR_OPERATING_SYSTEM;
            emit("op=fork-alloc child=%d status=%s", (int)child, status_name(note(rc)));
        } else if (strcmp(op, "counters") == 0) {
            print_counters();
        } else {
            usage("unknown operation");
        }
    }
    return g_failed ? 1 : 0;
}
