/*
 * omai_sim.h - test-only extras exported by the simulated libcuda.so.1.
 *
 * Tests of the shim use these counters to prove what reached the "driver":
 * e.g. an allocation the shim denied must not show up in alloc_calls.
 * The same counters, for every live process, are printed by
 * `omai-sim-ctl show` (see docs/simulator.md).
 */
#ifndef OMAI_SIM_H
#define OMAI_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "omai_cuda.h"

/* Calls that reached the simulated driver from this process. */
typedef struct omai_sim_counters {
    uint64_t alloc_calls;        /* every allocation entry point (all routes), denied or not */
    uint64_t alloc_failures;     /* of which returned an error (e.g. CUDA_ERROR_OUT_OF_MEMORY) */
    uint64_t free_calls;         /* every free/release/destroy of device memory */
    uint64_t launch_calls;       /* every launch entry point, graph launches included */
    uint64_t kernels_run;        /* kernels executed (a graph launch runs all its kernel nodes) */
    uint64_t busy_ns;            /* simulated GPU time this process's kernels occupied */
    uint64_t mem_info_calls;     /* cuMemGetInfo_v2 + cuDeviceTotalMem_v2 */
    uint64_t proc_address_calls; /* cuGetProcAddress + cuGetProcAddress_v2 */
} omai_sim_counters;

/* Copies this process's counters into *out (size = sizeof *out, for
 * forward compatibility). CUDA_ERROR_NOT_INITIALIZED before a successful
 * cuInit, CUDA_ERROR_INVALID_VALUE for a NULL pointer or a wrong size. */
CUresult omaiSimGetCounters(omai_sim_counters *out, size_t size);

#endif /* OMAI_SIM_H */
