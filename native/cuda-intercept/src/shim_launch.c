/*
 * shim_launch.c - compute quota: every kernel launch route spends GPU-time
 * tokens the agent granted, and waits when the container has none left.
 *
 * The agent (ComputeControlLoop) is the one controller per GPU: it measures
 * each container's GPU time through NVML, sets launch_cost_ns to the GPU time
 * one launch really costs, and raises token_grant_ns each period. The shim
 * only spends: a launch goes while the container's tokens_consumed_ns is
 * below the grant, adding launch_cost_ns to it. With none left it takes a
 * ticket (the total before its own fetch-add) and waits in bounded sleeps,
 * re-reading the grant, until the grant passes the ticket: waiters of all the
 * container's processes are served in ticket order. A launch that then fails
 * in the driver keeps its charge (over, never under), as does one killed while
 * waiting.
 *
 * Hot path (one GPU visible, tokens available): the record cached for the
 * control file's epoch, the flags, the grant and the total spent, four relaxed
 * fetch-adds (total and own slot: tokens, launches), then a tail jump to the
 * driver. No call, syscall, lock or log line; the clock is read only once a
 * launch has to wait.
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
static void charge_context_device(void) {
    CUdevice dev;
    if (context_device(&dev) == CUDA_SUCCESS) {
        launch_charge(dev);
    }
}

/* The common case in one piece and without a single call, so that each
 * wrapper can jump straight to the driver with its arguments untouched: one
 * visible GPU (device 0), its record cached for the current epoch, and either
 * compute not enforced or tokens left. Then the launch is charged (or not) and
 * true returned. False: nothing was charged, and the wrapper's slow path does
 * the whole job (first use, several GPUs, a new epoch, no tokens left - which
 * takes a ticket and waits). A launch that finds tokens left goes even if a
 * concurrent one takes the last of them meanwhile: the overshoot is at most one
 * charge per concurrently launching thread, and the next grant absorbs it. */
OMAI_ALWAYS_INLINE static inline bool launch_fast(void) {
    if (OMAI_UNLIKELY(__atomic_load_n(&omai_cuda_state, __ATOMIC_ACQUIRE) != 2 ||
                      __atomic_load_n(&visible_devices, __ATOMIC_RELAXED) != 1 ||
                      __atomic_load_n(&region_state, __ATOMIC_ACQUIRE) != REGION_OK)) {
        return false;
    }
    uint64_t e = __atomic_load_n(&ctl->header.epoch, __ATOMIC_ACQUIRE);
    uint64_t w = __atomic_load_n(&ord_cache[0], __ATOMIC_RELAXED);
    unsigned code = (unsigned)(w & 0xff);
    if (OMAI_UNLIKELY((w >> 8) != e || code == 0 || code > OMAI_MAX_DEVICES)) {
        return false;
    }
    uint32_t flags = __atomic_load_n(&ctl->header.flags, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (OMAI_UNLIKELY(__atomic_load_n(&ctl->header.epoch, __ATOMIC_RELAXED) != e)) {
        return false;
    }
    if (!(flags & OMAI_CONTROL_FLAG_COMPUTE_ENFORCED)) {
        return true;
    }
    if (OMAI_UNLIKELY(__atomic_load_n(&slot_state, __ATOMIC_ACQUIRE) != SLOT_HELD)) {
        return false;
    }
    unsigned idx = code - 1;
    const omai_control_device *rec = &ctl->devices[idx];
    omai_usage_device *tot = &usg->devices[idx];
    uint64_t grant = __atomic_load_n(&rec->token_grant_ns, __ATOMIC_ACQUIRE);
    if (OMAI_UNLIKELY(__atomic_load_n(&tot->tokens_consumed_ns, __ATOMIC_RELAXED) >= grant)) {
        return false;
    }
    uint64_t cost = __atomic_load_n(&rec->launch_cost_ns, __ATOMIC_RELAXED);
    if (OMAI_UNLIKELY(cost == 0)) {
        cost = OMAI_DEFAULT_LAUNCH_COST_NS;
    }
    omai_usage_slot_device *own = &slot->devices[idx];
    __atomic_fetch_add(&tot->tokens_consumed_ns, cost, __ATOMIC_RELAXED);
    __atomic_fetch_add(&tot->launches, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&own->tokens_consumed_ns, cost, __ATOMIC_RELAXED);
    __atomic_fetch_add(&own->launches, 1, __ATOMIC_RELAXED);
    return true;
}

/* --------------------------------------------------------------- launches */

/* Each wrapper: the fast path, then a tail jump to the driver; otherwise its
 * slow twin (never inlined, so the fast path keeps no frame) charges the
 * launch in full - waiting for tokens if need be - and calls the driver. */
#define OMAI_LAUNCH_WRAPPER(name, params, args)                            \
    __attribute__((noinline)) static CUresult slow_##name params {        \
        NEED_REAL(name);                                                   \
        charge_context_device();                                           \
        return omai_cu.name args;                                          \
    }                                                                      \
    CUresult name params {                                                 \
        if (OMAI_LIKELY(launch_fast() && omai_cu.name != NULL)) {          \
            return omai_cu.name args;                                      \
        }                                                                  \
        return slow_##name args;                                           \
    }

#define OMAI_GRID_PARAMS                                                                                   \
    (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, \
     unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,          \
     void **kernelParams, void **extra)
#define OMAI_GRID_ARGS \
    (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams, extra)
#define OMAI_COOP_PARAMS                                                                                   \
    (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, \
     unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,          \
     void **kernelParams)
#define OMAI_COOP_ARGS \
    (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams)

OMAI_LAUNCH_WRAPPER(cuLaunchKernel, OMAI_GRID_PARAMS, OMAI_GRID_ARGS)
OMAI_LAUNCH_WRAPPER(cuLaunchKernel_ptsz, OMAI_GRID_PARAMS, OMAI_GRID_ARGS)
OMAI_LAUNCH_WRAPPER(cuLaunchKernelEx,
                    (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra),
                    (config, f, kernelParams, extra))
OMAI_LAUNCH_WRAPPER(cuLaunchKernelEx_ptsz,
                    (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra),
                    (config, f, kernelParams, extra))
OMAI_LAUNCH_WRAPPER(cuLaunchCooperativeKernel, OMAI_COOP_PARAMS, OMAI_COOP_ARGS)
OMAI_LAUNCH_WRAPPER(cuLaunchCooperativeKernel_ptsz, OMAI_COOP_PARAMS, OMAI_COOP_ARGS)
/* A graph may hold many kernels, but its launch is charged once: the agent
 * sets launch_cost_ns to the GPU time NVML measured per launch, so a container
 * that launches graphs pays their real GPU time on average (docs/shim.md). */
OMAI_LAUNCH_WRAPPER(cuGraphLaunch, (CUgraphExec hGraphExec, CUstream hStream), (hGraphExec, hStream))
OMAI_LAUNCH_WRAPPER(cuGraphLaunch_ptsz, (CUgraphExec hGraphExec, CUstream hStream), (hGraphExec, hStream))

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
