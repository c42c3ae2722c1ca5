/*
 * omai-nvml-query: an NVML client (linked -lnvidia-ml) printing one
 * `result op=...` line per answer, for tests of the simulator and the agent.
 *
 *   omai-nvml-query OP...
 *     driver                       driver and CUDA versions
 *     devices                      every device: index, uuid, name, memory, pci, minor, numa
 *     memory GPU                   nvmlDeviceGetMemoryInfo_v2
 *     util GPU                     nvmlDeviceGetUtilizationRates
 *     telemetry GPU                temperature, power, SM/memory clocks, volatile ECC counts
 *                                  (a value NVML does not support prints as `unsupported`)
 *     proc-util GPU WINDOW_MS      nvmlDeviceGetProcessUtilization since now - WINDOW_MS
 *     procs GPU                    nvmlDeviceGetComputeRunningProcesses_v3
 *     wait-event GPU TIMEOUT_MS    register XID events, print the first that arrives
 *     sleep SECONDS
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "omai_nvml.h"
#include "workload_util.h"

static int g_failed;

static void usage(const char *why) {
    fprintf(stderr, "omai-nvml-query: %s\n"
                    "usage: omai-nvml-query OP...\n"
                    "  driver | devices | memory GPU | util GPU | telemetry GPU | proc-util GPU WINDOW_MS | procs GPU\n"
                    "  wait-event GPU TIMEOUT_MS | sleep SECONDS\n",
            why);
    exit(2);
}

static unsigned arg_uint(int argc, char **argv, int i, const char *what) {
    double v;
    if (i >= argc || parse_number(argv[i], 0, 4e9, &v) != 0) usage(what);
    return (unsigned)v;
}

static nvmlDevice_t device(unsigned index, const char *op) {
    nvmlDevice_t dev = NULL;
    nvmlReturn_t rc = nvmlDeviceGetHandleByIndex_v2(index, &dev);
    if (rc != NVML_SUCCESS) {
        emit("op=%s gpu=%u status=%d error=\"%s\"", op, index, (int)rc, nvmlErrorString(rc));
        g_failed = 1;
        return NULL;
    }
    return dev;
}

/* One telemetry value: its number, `unsupported` for NOT_SUPPORTED, or the error. */
static void telemetry_value(char *out, size_t len, nvmlReturn_t rc, unsigned long long v) {
    if (rc == NVML_SUCCESS) snprintf(out, len, "%llu", v);
    else if (rc == NVML_ERROR_NOT_SUPPORTED) snprintf(out, len, "unsupported");
    else snprintf(out, len, "error%d", (int)rc);
}

static void report(const char *op, unsigned gpu, nvmlReturn_t rc) {
    emit("op=%s gpu=%u status=%d error=\"%s\"", op, gpu, (int)rc, nvmlErrorString(rc));
    g_failed = 1;
}

int main(int argc, char **argv) {
    if (argc < 2) usage("no operation given");
    nvmlReturn_t rc = nvmlInit_v2();
    if (rc != NVML_SUCCESS) {
        emit("op=init status=%d error=\"%s\"", (int)rc, nvmlErrorString(rc));
        return 1;
    }
    int i = 1;
    while (i < argc) {
        const char *op = argv[i++];
        if (strcmp(op, "driver") == 0) {
            char version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
            int cuda = 0;
            rc = nvmlSystemGetDriverVersion(version, sizeof version);
            if (rc == NVML_SUCCESS) rc = nvmlSystemGetCudaDriverVersion(&cuda);
            if (rc != NVML_SUCCESS) report(op, 0, rc);
            else emit("op=driver version=%s cuda=%d status=0", version, cuda);
        } else if (strcmp(op, "devices") == 0) {
            unsigned count = 0;
            rc = nvmlDeviceGetCount_v2(&count);
            if (rc != NVML_SUCCESS) report(op, 0, rc);
            for (unsigned g = 0; rc == NVML_SUCCESS && g < count; g++) {
                nvmlDevice_t dev = device(g, op);
                if (dev == NULL) continue;
                char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE], uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
                nvmlMemory_t mem;
                nvmlPciInfo_t pci;
                unsigned minor = 0, index = 0, numa = 0;
                nvmlReturn_t r = nvmlDeviceGetName(dev, name, sizeof name);
                if (r == NVML_SUCCESS) r = nvmlDeviceGetUUID(dev, uuid, sizeof uuid);
                if (r == NVML_SUCCESS) r = nvmlDeviceGetMemoryInfo(dev, &mem);
                if (r == NVML_SUCCESS) r = nvmlDeviceGetPciInfo_v3(dev, &pci);
                if (r == NVML_SUCCESS) r = nvmlDeviceGetMinorNumber(dev, &minor);
                if (r == NVML_SUCCESS) r = nvmlDeviceGetIndex(dev, &index);
                nvmlReturn_t numa_rc = r == NVML_SUCCESS ? nvmlDeviceGetNumaNodeId(dev, &numa) : r;
                if (r != NVML_SUCCESS) {
                    report(op, g, r);
                    continue;
                }
                emit("op=device index=%u uuid=%s name=\"%s\" total=%llu pci=%s minor=%u numa=%d status=0", index, uuid,
                     name, mem.total, pci.busId, minor, numa_rc == NVML_SUCCESS ? (int)numa : -1);
            }
        } else if (strcmp(op, "memory") == 0) {
            unsigned g = arg_uint(argc, argv, i++, "memory needs GPU");
            nvmlDevice_t dev = device(g, op);
            if (dev == NULL) continue;
            nvmlMemory_v2_t mem;
            memset(&mem, 0, sizeof mem);
            mem.version = nvmlMemory_v2;
            rc = nvmlDeviceGetMemoryInfo_v2(dev, &mem);
            if (rc != NVML_SUCCESS) report(op, g, rc);
            else emit("op=memory gpu=%u total=%llu used=%llu free=%llu status=0", g, mem.total, mem.used, mem.free);
        } else if (strcmp(op, "util") == 0) {
            unsigned g = arg_uint(argc, argv, i++, "util needs GPU");
            nvmlDevice_t dev = device(g, op);
            if (dev == NULL) continue;
            nvmlUtilization_t u;
            rc = nvmlDeviceGetUtilizationRates(dev, &u);
            if (rc != NVML_SUCCESS) report(op, g, rc);
            else emit("op=util gpu=%u sm=%u memory=%u status=0", g, u.gpu, u.memory);
        } else if (strcmp(op, "telemetry") == 0) {
            unsigned g = arg_uint(argc, argv, i++, "telemetry needs GPU");
            nvmlDevice_t dev = device(g, op);
            if (dev == NULL) continue;
            unsigned v32 = 0;
            unsigned long long v64 = 0;
            char temp[32], power[32], sm[32], mem[32], corrected[32], uncorrected[32];
            rc = nvmlDeviceGetTemperature(dev, NVML_TEMPERATURE_GPU, &v32);
            telemetry_value(temp, sizeof temp, rc, v32);
            rc = nvmlDeviceGetPowerUsage(dev, &v32);
            telemetry_value(power, sizeof power, rc, v32);
            rc = nvmlDeviceGetClockInfo(dev, NVML_CLOCK_SM, &v32);
            telemetry_value(sm, sizeof sm, rc, v32);
            rc = nvmlDeviceGetClockInfo(dev, NVML_CLOCK_MEM, &v32);
            telemetry_value(mem, sizeof mem, rc, v32);
            rc = nvmlDeviceGetTotalEccErrors(dev, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC, &v64);
            telemetry_value(corrected, sizeof corrected, rc, v64);
            rc = nvmlDeviceGetTotalEccErrors(dev, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, &v64);
            telemetry_value(uncorrected, sizeof uncorrected, rc, v64);
            emit("op=telemetry gpu=%u temperature_c=%s power_mw=%s sm_clock_mhz=%s mem_clock_mhz=%s "
                 "ecc_corrected=%s ecc_uncorrected=%s status=0",
                 g, temp, power, sm, mem, corrected, uncorrected);
        } else if (strcmp(op, "proc-util") == 0) {
            unsigned g = arg_uint(argc, argv, i++, "proc-util needs GPU WINDOW_MS");
            unsigned window_ms = arg_uint(argc, argv, i++, "proc-util needs GPU WINDOW_MS");
            nvmlDevice_t dev = device(g, op);
            if (dev == NULL) continue;
            struct timeval tv;
            gettimeofday(&tv, NULL);
            unsigned long long now_us = (unsigned long long)tv.tv_sec * 1000000ull + (unsigned long long)tv.tv_usec;
            unsigned long long since = now_us - (unsigned long long)window_ms * 1000ull;
            unsigned n = 0;
            rc = nvmlDeviceGetProcessUtilization(dev, NULL, &n, since);
            if (rc == NVML_ERROR_NOT_FOUND) {
                emit("op=proc-util gpu=%u processes=0 status=0", g);
                continue;
            }
            nvmlProcessUtilizationSample_t samples[256];
            if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
                n = n > 256 ? 256 : n;
                rc = nvmlDeviceGetProcessUtilization(dev, samples, &n, since);
            }
            if (rc != NVML_SUCCESS) {
                report(op, g, rc);
                continue;
            }
            emit("op=proc-util gpu=%u processes=%u status=0", g, n);
            for (unsigned k = 0; k < n; k++)
                emit("op=proc-util-sample gpu=%u pid=%u sm=%u timestamp_us=%llu status=0", g, samples[k].pid,
                     samples[k].smUtil, samples[k].timeStamp);
        } else if (strcmp(op, "procs") == 0) {
            unsigned g = arg_uint(argc, argv, i++, "procs needs GPU");
            nvmlDevice_t dev = device(g, op);
            if (dev == NULL) continue;
            nvmlProcessInfo_t infos[256];
            unsigned n = 256;
            rc = nvmlDeviceGetComputeRunningProcesses_v3(dev, &n, infos);
            if (rc != NVML_SUCCESS) {
                report(op, g, rc);
                continue;
            }
            emit("op=procs gpu=%u processes=%u status=0", g, n);
            for (unsigned k = 0; k < n; k++)
                emit("op=proc gpu=%u pid=%u used=%llu status=0", g, infos[k].pid, infos[k].usedGpuMemory);
        } else if (strcmp(op, "wait-event") == 0) {
            unsigned g = arg_uint(argc, argv, i++, "wait-event needs GPU TIMEOUT_MS");
            unsigned timeout = arg_uint(argc, argv, i++, "wait-event needs GPU TIMEOUT_MS");
            nvmlDevice_t dev = device(g, op);
            if (dev == NULL) continue;
            nvmlEventSet_t set;
            nvmlEventData_t data;
            rc = nvmlEventSetCreate(&set);
            if (rc == NVML_SUCCESS) rc = nvmlDeviceRegisterEvents(dev, nvmlEventTypeXidCriticalError, set);
            /* Registered: a test may now inject and expect delivery. */
            if (rc == NVML_SUCCESS) emit("op=event-registered gpu=%u status=0", g);
            if (rc == NVML_SUCCESS) rc = nvmlEventSetWait_v2(set, &data, timeout);
            if (rc == NVML_SUCCESS) {
                unsigned idx = 0;
                nvmlDeviceGetIndex(data.device, &idx);
                emit("op=event gpu=%u type=%llu xid=%llu status=0", idx, data.eventType, data.eventData);
            } else {
                report(op, g, rc);
            }
            nvmlEventSetFree(set);
        } else if (strcmp(op, "sleep") == 0) {
            double s;
            if (i >= argc || parse_number(argv[i++], 0, 86400, &s) != 0) usage("sleep needs SECONDS");
            sleep_until_ns(mono_ns() + (uint64_t)(s * 1e9));
        } else {
            usage("unknown operation");
        }
    }
    nvmlShutdown();
    return g_failed ? 1 : 0;
}
