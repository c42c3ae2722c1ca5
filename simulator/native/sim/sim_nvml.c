/*
 * The simulated NVML (libnvidia-ml.so.1). See docs/simulator.md.
 *
 * Everything is computed from the shared state the simulated libcuda writes:
 * memory from the live processes' slots (dead ones are reaped first, so a
 * killed process never shows), utilisation from the ring of kernel runs.
 */
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "omai_nvml.h"
#include "sim_core.h"

#define EXPORT __attribute__((visibility("default")))

#define UTIL_WINDOW_NS 1000000000ull /* nvmlDeviceGetUtilizationRates looks back 1 s */
#define MAX_EVENT_SETS 64

typedef struct nvml_dev {
    int index;
} nvml_dev;

typedef struct nvml_event_set {
    int used;
    unsigned long long mask[SIM_MAX_GPUS]; /* registered event types per GPU */
    uint64_t seen[SIM_MAX_GPUS];           /* events_written at registration / last delivery */
} nvml_event_set;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_init_count;
static int g_opened;
static sim_runtime g_rt;
static nvml_dev g_devs[SIM_MAX_GPUS];
static nvml_event_set g_sets[MAX_EVENT_SETS];

static int initialized(void) {
    pthread_mutex_lock(&g_lock);
    int ok = g_init_count > 0;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

static nvmlReturn_t init_common(void) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (!g_opened) {
        char err[1024];
        if (sim_open(&g_rt, err, sizeof err) != SIM_OPEN_OK) {
            fprintf(stderr, "omai-sim: nvmlInit: %s\n", err);
            rc = NVML_ERROR_DRIVER_NOT_LOADED;
        } else {
            for (int i = 0; i < SIM_MAX_GPUS; i++) g_devs[i].index = i;
            g_opened = 1;
        }
    }
    if (rc == NVML_SUCCESS) g_init_count++;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT nvmlReturn_t nvmlInit_v2(void) { return init_common(); }
EXPORT nvmlReturn_t nvmlInit(void) { return init_common(); }

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    if ((flags & ~(unsigned)(NVML_INIT_FLAG_NO_GPUS | NVML_INIT_FLAG_NO_ATTACH)) != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    return init_common();
}

EXPORT nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = g_init_count > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (g_init_count > 0) g_init_count--; /* the mapping stays: re-init is cheap and handles stay valid */
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_MEMORY: return "Insufficient Memory";
    case NVML_ERROR_NO_DATA: return "No data";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    case NVML_ERROR_UNKNOWN: return "Unknown Error";
    default: return "Unknown Error";
    }
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    if (version == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(g_rt.cfg.driver_version) >= length) return NVML_ERROR_INSUFFICIENT_SIZE;
    snprintf(version, length, "%s", g_rt.cfg.driver_version);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    if (cudaDriverVersion == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *cudaDriverVersion = g_rt.cfg.cuda_version;
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------ devices */

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    if (deviceCount == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *deviceCount = (unsigned)g_rt.cfg.gpu_count;
    return NVML_SUCCESS;
}

static nvmlDevice_t handle_of(int index) { return (nvmlDevice_t)&g_devs[index]; }

/* Resolves a handle to its index; GPU_IS_LOST once omai-sim-ctl lost it. */
static nvmlReturn_t device_index(nvmlDevice_t device, int *index) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    uintptr_t h = (uintptr_t)device, base = (uintptr_t)g_devs;
    if (h < base || h >= base + sizeof g_devs || (h - base) % sizeof(nvml_dev) != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    int i = (int)((h - base) / sizeof(nvml_dev));
    if (i >= g_rt.cfg.gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    if (__atomic_load_n(&g_rt.st->gpus[i].lost, __ATOMIC_ACQUIRE)) return NVML_ERROR_GPU_IS_LOST;
    *index = i;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= (unsigned)g_rt.cfg.gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = handle_of((int)index);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    if (uuid == NULL || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < g_rt.cfg.gpu_count; i++) {
        if (strcasecmp(g_rt.cfg.gpus[i].uuid, uuid) == 0) {
            *device = handle_of(i);
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    if (pciBusId == NULL || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned d = 0, b = 0, v = 0, f = 0;
    if (sscanf(pciBusId, "%x:%x:%x.%x", &d, &b, &v, &f) < 3) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < g_rt.cfg.gpu_count; i++) {
        const sim_gpu_config *g = &g_rt.cfg.gpus[i];
        if (g->pci_domain == d && g->pci_bus == b && g->pci_device == v && g->pci_function == f) {
            *device = handle_of(i);
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

#define DEVICE_OR_RETURN(device, idx)            \
    int idx;                                     \
    do {                                         \
        nvmlReturn_t rc_ = device_index(device, &idx); \
        if (rc_ != NVML_SUCCESS) return rc_;     \
    } while (0)

static nvmlReturn_t copy_string(char *dst, unsigned int length, const char *src) {
    if (dst == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) >= length) return NVML_ERROR_INSUFFICIENT_SIZE;
    snprintf(dst, length, "%s", src);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    DEVICE_OR_RETURN(device, i);
    return copy_string(name, length, g_rt.cfg.gpus[i].name);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    DEVICE_OR_RETURN(device, i);
    return copy_string(uuid, length, g_rt.cfg.gpus[i].uuid);
}

EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    DEVICE_OR_RETURN(device, i);
    if (index == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned)i;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber) {
    DEVICE_OR_RETURN(device, i);
    if (minorNumber == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *minorNumber = g_rt.cfg.gpus[i].minor_number;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    DEVICE_OR_RETURN(device, i);
    if (pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const sim_gpu_config *g = &g_rt.cfg.gpus[i];
    memset(pci, 0, sizeof *pci);
    pci->domain = g->pci_domain;
    pci->bus = g->pci_bus;
    pci->device = g->pci_device;
    pci->pciDeviceId = 0x233010deu; /* H100 SXM5 device id, NVIDIA vendor id */
    pci->pciSubSystemId = 0x16c110deu;
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.%X", g->pci_domain & 0xffffu,
             g->pci_bus, g->pci_device, g->pci_function);
    snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.%X", g->pci_domain, g->pci_bus, g->pci_device,
             g->pci_function);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node) {
    DEVICE_OR_RETURN(device, i);
    if (node == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (g_rt.cfg.gpus[i].numa_node < 0) return NVML_ERROR_NOT_SUPPORTED;
    *node = (unsigned)g_rt.cfg.gpus[i].numa_node;
    return NVML_SUCCESS;
}

/* Telemetry: what omai-sim-ctl set (or the defaults); a knob set to "unsupported" answers NOT_SUPPORTED, as a
 * card without that sensor or with ECC off does. */
static nvmlReturn_t telemetry32(const uint32_t *knob, unsigned int *out) {
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint32_t v = __atomic_load_n(knob, __ATOMIC_ACQUIRE);
    if (v == SIM_UNSUPPORTED32) return NVML_ERROR_NOT_SUPPORTED;
    *out = v;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType,
                                             unsigned int *temp) {
    DEVICE_OR_RETURN(device, i);
    if (temp == NULL || sensorType != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
    return telemetry32(&g_rt.st->gpus[i].temperature_c, temp);
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    DEVICE_OR_RETURN(device, i);
    return telemetry32(&g_rt.st->gpus[i].power_mw, power);
}

EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock) {
    DEVICE_OR_RETURN(device, i);
    switch (type) {
    case NVML_CLOCK_GRAPHICS: /* one clock domain for graphics and SM, as on data-centre cards */
    case NVML_CLOCK_SM:
        return telemetry32(&g_rt.st->gpus[i].sm_clock_mhz, clock);
    case NVML_CLOCK_MEM:
        return telemetry32(&g_rt.st->gpus[i].mem_clock_mhz, clock);
    case NVML_CLOCK_VIDEO:
        return NVML_ERROR_NOT_SUPPORTED;
    default:
        return NVML_ERROR_INVALID_ARGUMENT;
    }
}

EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t errorType,
                                                nvmlEccCounterType_t counterType, unsigned long long *eccCounts) {
    DEVICE_OR_RETURN(device, i);
    if (eccCounts == NULL || (counterType != NVML_VOLATILE_ECC && counterType != NVML_AGGREGATE_ECC)) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    const uint64_t *knob;
    if (errorType == NVML_MEMORY_ERROR_TYPE_CORRECTED) knob = &g_rt.st->gpus[i].ecc_corrected;
    else if (errorType == NVML_MEMORY_ERROR_TYPE_UNCORRECTED) knob = &g_rt.st->gpus[i].ecc_uncorrected;
    else return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t v = __atomic_load_n(knob, __ATOMIC_ACQUIRE);
    if (v == SIM_UNSUPPORTED64) return NVML_ERROR_NOT_SUPPORTED;
    *eccCounts = v;
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------- memory */

static void memory_of(int i, uint64_t *total, uint64_t *used) {
    sim_lock(g_rt.st);
    sim_reap_dead_locked(g_rt.st);
    *total = g_rt.st->gpus[i].total_bytes;
    *used = sim_used_bytes_locked(g_rt.st, i);
    sim_unlock(g_rt.st);
    if (*used > *total) *used = *total;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    DEVICE_OR_RETURN(device, i);
    if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t total, used;
    memory_of(i, &total, &used);
    memory->total = total;
    memory->used = used;
    memory->free = total - used;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    DEVICE_OR_RETURN(device, i);
    if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    uint64_t total, used;
    memory_of(i, &total, &used);
    memory->total = total;
    memory->reserved = 0;
    memory->used = used;
    memory->free = total - used;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                            nvmlProcessInfo_t *infos) {
    DEVICE_OR_RETURN(device, i);
    if (infoCount == NULL || (*infoCount > 0 && infos == NULL)) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlProcessInfo_t found[SIM_MAX_PROCS];
    unsigned n = 0;
    sim_lock(g_rt.st);
    sim_reap_dead_locked(g_rt.st);
    for (int p = 0; p < SIM_MAX_PROCS; p++) {
        const sim_proc *proc = &g_rt.st->procs[p];
        if (!proc->active || (!proc->has_context[i] && proc->bytes[i] == 0)) continue;
        found[n].pid = proc->nvml_pid;
        found[n].usedGpuMemory = proc->bytes[i];
        found[n].gpuInstanceId = 0xFFFFFFFFu;
        found[n].computeInstanceId = 0xFFFFFFFFu;
        n++;
    }
    sim_unlock(g_rt.st);
    if (*infoCount < n) {
        *infoCount = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    if (n > 0) memcpy(infos, found, n * sizeof found[0]);
    *infoCount = n;
    return NVML_SUCCESS;
}

/* -------------------------------------------------------------- utilisation */

static uint64_t overlap(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1) {
    uint64_t lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
    return hi > lo ? hi - lo : 0;
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    DEVICE_OR_RETURN(device, i);
    if (utilization == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t now = sim_now_ns(), from = now > UTIL_WINDOW_NS ? now - UTIL_WINDOW_NS : 0, busy = 0;
    sim_lock(g_rt.st);
    const sim_gpu_state *g = &g_rt.st->gpus[i];
    uint64_t n = g->samples_written < SIM_SAMPLES ? g->samples_written : SIM_SAMPLES;
    for (uint64_t k = 0; k < n; k++) {
        const sim_sample *s = &g->samples[(g->samples_written - 1 - k) % SIM_SAMPLES];
        busy += overlap(s->start_ns, s->end_ns, from, now);
    }
    sim_unlock(g_rt.st);
    uint64_t pct = (busy * 100 + (now - from) / 2) / (now - from);
    utilization->gpu = (unsigned)(pct > 100 ? 100 : pct);
    utilization->memory = 0; /* memory traffic is not simulated */
    return NVML_SUCCESS;
}

/* One sample per process that ran kernels in (lastSeenTimeStamp, now]: smUtil
 * is the share of that window its kernels occupied the GPU. With
 * lastSeenTimeStamp 0 the window is the last second. */
EXPORT nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
                                                    unsigned int *processSamplesCount,
                                                    unsigned long long lastSeenTimeStamp) {
    DEVICE_OR_RETURN(device, i);
    if (processSamplesCount == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t now = sim_now_ns();
    uint64_t from = lastSeenTimeStamp == 0 ? (now > UTIL_WINDOW_NS ? now - UTIL_WINDOW_NS : 0)
                                           : sim_epoch_us_to_mono(lastSeenTimeStamp);
    if (from >= now) return NVML_ERROR_NOT_FOUND;
    uint32_t pids[SIM_MAX_PROCS];
    uint64_t busy[SIM_MAX_PROCS];
    unsigned n = 0;
    sim_lock(g_rt.st);
    const sim_gpu_state *g = &g_rt.st->gpus[i];
    uint64_t count = g->samples_written < SIM_SAMPLES ? g->samples_written : SIM_SAMPLES;
    for (uint64_t k = 0; k < count; k++) {
        const sim_sample *s = &g->samples[(g->samples_written - 1 - k) % SIM_SAMPLES];
        uint64_t b = overlap(s->start_ns, s->end_ns, from, now);
        if (b == 0) continue;
        unsigned j = 0;
        while (j < n && pids[j] != s->pid) j++;
        if (j == n) {
            if (n == SIM_MAX_PROCS) continue;
            pids[n] = s->pid;
            busy[n++] = 0;
        }
        busy[j] += b;
    }
    sim_unlock(g_rt.st);
    if (n == 0) return NVML_ERROR_NOT_FOUND;
    if (utilization == NULL || *processSamplesCount < n) {
        *processSamplesCount = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    uint64_t window = now - from, stamp = sim_mono_to_epoch_us(now);
    for (unsigned j = 0; j < n; j++) {
        uint64_t pct = (busy[j] * 100 + window / 2) / window;
        utilization[j].pid = pids[j];
        utilization[j].timeStamp = stamp;
        utilization[j].smUtil = (unsigned)(pct > 100 ? 100 : pct);
        utilization[j].memUtil = 0;
        utilization[j].encUtil = 0;
        utilization[j].decUtil = 0;
    }
    *processSamplesCount = n;
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------- events */

#define SUPPORTED_EVENTS (nvmlEventTypeXidCriticalError | nvmlEventTypeDoubleBitEccError | nvmlEventTypeSingleBitEccError)

static nvml_event_set *set_get(nvmlEventSet_t set) {
    uintptr_t h = (uintptr_t)set, base = (uintptr_t)g_sets;
    if (h < base || h >= base + sizeof g_sets || (h - base) % sizeof(nvml_event_set) != 0) return NULL;
    nvml_event_set *s = &g_sets[(h - base) / sizeof(nvml_event_set)];
    return s->used ? s : NULL;
}

EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    if (set == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = NVML_ERROR_MEMORY;
    for (int i = 0; i < MAX_EVENT_SETS; i++) {
        if (!g_sets[i].used) {
            memset(&g_sets[i], 0, sizeof g_sets[i]);
            g_sets[i].used = 1;
            *set = (nvmlEventSet_t)&g_sets[i];
            rc = NVML_SUCCESS;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

EXPORT nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *eventTypes) {
    DEVICE_OR_RETURN(device, i);
    (void)i;
    if (eventTypes == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *eventTypes = SUPPORTED_EVENTS;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes, nvmlEventSet_t set) {
    DEVICE_OR_RETURN(device, i);
    if ((eventTypes & ~SUPPORTED_EVENTS) != 0) return NVML_ERROR_NOT_SUPPORTED;
    pthread_mutex_lock(&g_lock);
    nvml_event_set *s = set_get(set);
    if (s != NULL) {
        s->mask[i] |= eventTypes;
        s->seen[i] = __atomic_load_n(&g_rt.st->gpus[i].events_written, __ATOMIC_ACQUIRE); /* only new events */
    }
    pthread_mutex_unlock(&g_lock);
    return s == NULL ? NVML_ERROR_INVALID_ARGUMENT : NVML_SUCCESS;
}

/* Returns 1 and fills data if an unseen registered event is pending. */
static int next_event(nvml_event_set *s, nvmlEventData_t *data) {
    for (int i = 0; i < g_rt.cfg.gpu_count; i++) {
        if (s->mask[i] == 0) continue;
        sim_lock(g_rt.st);
        const sim_gpu_state *g = &g_rt.st->gpus[i];
        uint64_t written = g->events_written;
        if (written - s->seen[i] > SIM_EVENTS) s->seen[i] = written - SIM_EVENTS; /* overwritten ones are lost */
        int found = 0;
        while (s->seen[i] < written && !found) {
            const sim_event *e = &g->events[s->seen[i] % SIM_EVENTS];
            s->seen[i]++;
            if ((e->type & s->mask[i]) == 0) continue;
            data->device = handle_of(i);
            data->eventType = e->type;
            data->eventData = e->data;
            data->gpuInstanceId = 0xFFFFFFFFu;
            data->computeInstanceId = 0xFFFFFFFFu;
            found = 1;
        }
        sim_unlock(g_rt.st);
        if (found) return 1;
    }
    return 0;
}

EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    if (data == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t deadline = sim_now_ns() + (uint64_t)timeoutms * 1000000ull;
    for (;;) {
        /* Read before looking at the rings: an event injected after the look changes it, so the wait below
         * returns at once instead of missing the event until the timeout. */
        uint32_t seq = __atomic_load_n(&g_rt.st->events_seq, __ATOMIC_ACQUIRE);
        pthread_mutex_lock(&g_lock);
        nvml_event_set *s = set_get(set);
        int got = s != NULL && next_event(s, data);
        pthread_mutex_unlock(&g_lock);
        if (s == NULL) return NVML_ERROR_INVALID_ARGUMENT;
        if (got) return NVML_SUCCESS;
        uint64_t now = sim_now_ns();
        if (now >= deadline) return NVML_ERROR_TIMEOUT;
        /* Blocks like the real driver's wait (no polling): woken by sim_inject_event in whichever process. */
        uint64_t left = deadline - now;
        struct timespec rel = {.tv_sec = (time_t)(left / 1000000000ull), .tv_nsec = (long)(left % 1000000000ull)};
        syscall(SYS_futex, &g_rt.st->events_seq, FUTEX_WAIT, seq, &rel, NULL, 0);
    }
}

EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    pthread_mutex_lock(&g_lock);
    nvml_event_set *s = set_get(set);
    if (s != NULL) s->used = 0;
    pthread_mutex_unlock(&g_lock);
    return s == NULL ? NVML_ERROR_INVALID_ARGUMENT : NVML_SUCCESS;
}
