/*
 * shim_launch.c - compute quota: every kernel launch route spends GPU-time
 * tokens the agent granted, and waits when the container has none left.
 *
 * The agent (ComputeControlLoop) is the one controller per GPU: it measures
 * each container's GPU time through NVML, sets launch_cost_ns to the GPU time
 * one launch really costs, and raises token_grant_ns each period. The shim
 * only spends: per launch it takes a ticket by fetch-add of launch_cost_ns on
 * the container's tokens_consumed_ns; the launch may go while the ticket (the
 * total before its own charge) is below the grant, else it waits in bounded
 * sleeps re-reading the grant. One atomic add decides, so concurrent
 * processes never spend the same token twice and waiters are served in ticket
 * order. A launch that then fails in the driver keeps its charge (over, never
 * under), as does one killed while waiting.
 *
 * Hot path (tokens available): the seqlocked record lookup cached per epoch,
 * the flags, four relaxed fetch-adds (total and own slot: tokens, launches)
 * and one acquire load of the grant. No syscall, lock or log line; the clock
 * is read only once a launch has to wait.
 *
 * Agent gone (heartbeat older than max(2 s, 20 periods)): launches go on at
 * the quota's rate - the grant is extended by quota_milli/1000 of the time
 * since the heartbeat went stale - so a dead agent neither stops the
 * container nor frees it from its quota.
 *
 * Part of the one translation unit shim_unity.c (after shim_mem.c, whose
 * context_device/stream_device it uses).
 */
#include <time.h>

#include "shim.h"

#define STALE_MIN_NS 2000000000ull   /* heartbeat older than this (or 20 periods) = agent gone */
#define STALE_PERIODS 20ull
#define WAIT_FIRST_NS 50000ull       /* first sleep of a throttled launch */
#define WAIT_MAX_NS 1000000ull       /* sleeps double up to this: grants come once per period */

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* When this process first had to wait while no heartbeat was ever written:
 * the reference for "agent gone" then, so an agent that never ticks cannot
 * stop the container for good. 0 = not yet. */
static uint64_t first_wait_without_agent_ns;

/* Record index of a device for launches, and whether compute is enforced.
 * Returns false when launches on it pass through untouched: no usable
 * control file (such a process can hold no device memory), the device is not
 * in it, or compute is not enforced. */
OMAI_ALWAYS_INLINE static inline bool launch_record(CUdevice ord, int *idx) {
    if (OMAI_LIKELY(__atomic_load_n(&region_state, __ATOMIC_ACQUIRE) == REGION_OK &&
                    (unsigned)ord < ORD_CACHE)) {
        uint64_t e = __atomic_load_n(&ctl->header.epoch, __ATOMIC_ACQUIRE);
        uint64_t w = __atomic_load_n(&ord_cache[ord], __ATOMIC_RELAXED);
        unsigned code = (unsigned)(w & 0xff);
        if (OMAI_LIKELY((w >> 8) == e && code != 0 && code <= OMAI_MAX_DEVICES)) {
            uint32_t flags = __atomic_load_n(&ctl->header.flags, __ATOMIC_RELAXED);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (OMAI_LIKELY(__atomic_load_n(&ctl->header.epoch, __ATOMIC_RELAXED) == e)) {
                *idx = (int)code - 1;
                return (flags & OMAI_CONTROL_FLAG_COMPUTE_ENFORCED) != 0;
            }
        }
    }
    /* First launch, a new epoch, an odd one: the memory code's lookup maps the
     * ordinal (and keeps the last mapping while the agent is stuck mid-update).
     * The flags are one word: whichever value it holds is a valid policy. */
    uint64_t limit;
    if (!lookup(ord, NULL, idx, &limit)) {
        return false;
    }
    return (__atomic_load_n(&ctl->header.flags, __ATOMIC_RELAXED) & OMAI_CONTROL_FLAG_COMPUTE_ENFORCED) != 0;
}

/* Tokens the container may have spent by `now` beyond the grant because the
 * agent is gone: quota_milli/1000 of the time since its heartbeat went stale. */
static uint64_t stale_extension(int idx, uint64_t now) {
    uint64_t hb = __atomic_load_n(&ctl->header.heartbeat_ns, __ATOMIC_ACQUIRE);
    if (hb == 0) {
        uint64_t expected = 0;
        __atomic_compare_exchange_n(&first_wait_without_agent_ns, &expected, now, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
        hb = __atomic_load_n(&first_wait_without_agent_ns, __ATOMIC_RELAXED);
    }
    uint64_t period_ns = (uint64_t)__atomic_load_n(&ctl->header.compute_period_us, __ATOMIC_RELAXED) * 1000ull;
    uint64_t threshold = omai_sat_mul(period_ns, STALE_PERIODS);
    if (threshold < STALE_MIN_NS) {
        threshold = STALE_MIN_NS;
    }
    uint64_t stale_at = omai_sat_add(hb, threshold);
    if (now <= stale_at) {
        return 0;
    }
    static int said;
    if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED)) {
        omai_log("the agent's heartbeat is %llu ms old; launches continue at this container's compute quota "
                 "until it is back (see docs/shim.md)",
                 (unsigned long long)((now - hb) / 1000000ull));
    }
    uint64_t q = __atomic_load_n(&ctl->devices[idx].compute_quota_milli, __ATOMIC_RELAXED);
    if (q > 1000) {
        q = 1000;
    }
    uint64_t d = now - stale_at;
    return omai_sat_add(d / 1000 * q, d % 1000 * q / 1000);
}

/* The throttled path: wait until the grant covers the ticket, sleeping
 * 50 us doubling to 1 ms, and account the time waited. */
__attribute__((noinline)) static void launch_wait(int idx, uint64_t ticket, omai_usage_slot *s) {
    const uint64_t *grant_word = &ctl->devices[idx].token_grant_ns;
    uint64_t start = mono_ns();
    uint64_t now = start;
    uint64_t nap = WAIT_FIRST_NS;
    while (ticket >= omai_sat_add(__atomic_load_n(grant_word, __ATOMIC_ACQUIRE), stale_extension(idx, now))) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)nap};
        nanosleep(&ts, NULL); /* EINTR: re-check early, harmless */
        nap = nap * 2 > WAIT_MAX_NS ? WAIT_MAX_NS : nap * 2;
        now = mono_ns();
    }
    uint64_t waited = now - start;
    __atomic_fetch_add(&usg->devices[idx].throttled_ns, waited, __ATOMIC_RELAXED);
    if (s) {
        __atomic_fetch_add(&s->devices[idx].throttled_ns, waited, __ATOMIC_RELAXED);
    }
}

/* Charges one launch on a device and returns once it may go. */
OMAI_ALWAYS_INLINE static inline void launch_charge(CUdevice ord) {
    int idx;
    if (!launch_record(ord, &idx)) {
        return;
    }
    omai_usage_slot *s = own_slot();
    uint64_t cost = __atomic_load_n(&ctl->devices[idx].launch_cost_ns, __ATOMIC_RELAXED);
    if (cost == 0) {
        cost = OMAI_DEFAULT_LAUNCH_COST_NS;
    }
    omai_usage_device *tot = &usg->devices[idx];
    uint64_t ticket = __atomic_fetch_add(&tot->tokens_consumed_ns, cost, __ATOMIC_RELAXED);
    __atomic_fetch_add(&tot->launches, 1, __ATOMIC_RELAXED);
    if (OMAI_LIKELY(s != NULL)) {
        __atomic_fetch_add(&s->devices[idx].tokens_consumed_ns, cost, __ATOMIC_RELAXED);
        __atomic_fetch_add(&s->devices[idx].launches, 1, __ATOMIC_RELAXED);
    }
    if (OMAI_UNLIKELY(ticket >= __atomic_load_n(&ctl->devices[idx].token_grant_ns, __ATOMIC_ACQUIRE))) {
        launch_wait(idx, ticket, s);
    }
}

/* The current context's device pays (one GPU visible: device 0, no driver
 * call). If there is none the driver's launch fails and nothing was charged. */
OMAI_ALWAYS_INLINE static inline void charge_context_device(void) {
    CUdevice dev;
    if (OMAI_LIKELY(context_device(&dev) == CUDA_SUCCESS)) {
        launch_charge(dev);
    }
}

/* --------------------------------------------------------------- launches */

CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                        unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                        unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra) {
    NEED_REAL(cuLaunchKernel);
    charge_context_device();
    return omai_cu.cuLaunchKernel(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ,
                                  sharedMemBytes, hStream, kernelParams, extra);
}

CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                             unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                             unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra) {
    NEED_REAL(cuLaunchKernel_ptsz);
    charge_context_device();
    return omai_cu.cuLaunchKernel_ptsz(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ,
                                       sharedMemBytes, hStream, kernelParams, extra);
}

CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra) {
    NEED_REAL(cuLaunchKernelEx);
    charge_context_device();
    return omai_cu.cuLaunchKernelEx(config, f, kernelParams, extra);
}

CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra) {
    NEED_REAL(cuLaunchKernelEx_ptsz);
    charge_context_device();
    return omai_cu.cuLaunchKernelEx_ptsz(config, f, kernelParams, extra);
}

CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                   unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                                   unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                                   void **kernelParams) {
    NEED_REAL(cuLaunchCooperativeKernel);
    charge_context_device();
    return omai_cu.cuLaunchCooperativeKernel(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ,
                                             sharedMemBytes, hStream, kernelParams);
}

CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                        unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                                        unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                                        void **kernelParams) {
    NEED_REAL(cuLaunchCooperativeKernel_ptsz);
    charge_context_device();
    return omai_cu.cuLaunchCooperativeKernel_ptsz(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY,
                                                  blockDimZ, sharedMemBytes, hStream, kernelParams);
}

/* One kernel per device: each device's container record pays for its own,
 * on the device of the entry's stream. */
CUresult cuLaunchCooperativeKernelMultiDevice(CUDA_LAUNCH_PARAMS *launchParamsList, unsigned int numDevices,
                                              unsigned int flags) {
    NEED_REAL(cuLaunchCooperativeKernelMultiDevice);
    for (unsigned int i = 0; launchParamsList && i < numDevices; i++) {
        CUdevice dev;
        if (stream_device(launchParamsList[i].hStream, &dev) == CUDA_SUCCESS) {
            launch_charge(dev);
        }
    }
    return omai_cu.cuLaunchCooperativeKernelMultiDevice(launchParamsList, numDevices, flags);
}

/* A graph may hold many kernels, but its launch is charged once: the agent
 * sets launch_cost_ns to the GPU time NVML measured per launch, so a container
 * that launches graphs pays their real GPU time on average (docs/shim.md). */
CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
    NEED_REAL(cuGraphLaunch);
    charge_context_device();
    return omai_cu.cuGraphLaunch(hGraphExec, hStream);
}

CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream) {
    NEED_REAL(cuGraphLaunch_ptsz);
    charge_context_device();
    return omai_cu.cuGraphLaunch_ptsz(hGraphExec, hStream);
}
