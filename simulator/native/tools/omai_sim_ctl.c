/*
 * omai-sim-ctl: inspect and steer the simulated driver's shared state
 * (same OMAI_SIM_CONFIG / OMAI_SIM_STATE as the programs under test).
 *
 *   omai-sim-ctl show              one `gpu ...` line per GPU, one `proc ...` line per live process
 *   omai-sim-ctl reset             recreate the state (forgets every process and sample)
 *   omai-sim-ctl reap              release the memory of dead processes now
 *   omai-sim-ctl inject-xid GPU XID  deliver an XID critical error to NVML event sets
 *   omai-sim-ctl lose-gpu GPU      NVML then answers GPU_IS_LOST for GPU (and XID 79 is raised)
 *   omai-sim-ctl set GPU KEY VALUE what NVML reports: KEY temperature (C) | power-mw | sm-clock-mhz |
 *                                  mem-clock-mhz | ecc-corrected | ecc-uncorrected; VALUE a number or
 *                                  `unsupported` (NVML then answers NOT_SUPPORTED)
 *   omai-sim-ctl die-holding-lock  SIGKILL itself inside the state lock (tests lock recovery)
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omai_nvml.h"
#include "sim_core.h"

static int usage(const char *why) {
    fprintf(stderr, "omai-sim-ctl: %s\n"
                    "usage: omai-sim-ctl show | reset | reap | inject-xid GPU XID | lose-gpu GPU | set GPU KEY VALUE\n"
                    "       | die-holding-lock\n"
                    "  set keys: temperature power-mw sm-clock-mhz mem-clock-mhz ecc-corrected ecc-uncorrected;\n"
                    "  values: a number or unsupported\n",
            why);
    return 2;
}

static int parse_gpu(const char *text, const sim_runtime *rt, int *gpu) {
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < 0 || v >= rt->cfg.gpu_count) {
        fprintf(stderr, "omai-sim-ctl: bad GPU '%s': expected an index 0..%d\n", text, rt->cfg.gpu_count - 1);
        return -1;
    }
    *gpu = (int)v;
    return 0;
}

/* omai-sim-ctl set GPU KEY VALUE: one telemetry knob of the simulated NVML. */
static int set_telemetry(sim_gpu_state *g, const char *key, const char *value) {
    uint32_t *knob32 = NULL;
    uint64_t *knob64 = NULL;
    if (strcmp(key, "temperature") == 0) knob32 = &g->temperature_c;
    else if (strcmp(key, "power-mw") == 0) knob32 = &g->power_mw;
    else if (strcmp(key, "sm-clock-mhz") == 0) knob32 = &g->sm_clock_mhz;
    else if (strcmp(key, "mem-clock-mhz") == 0) knob32 = &g->mem_clock_mhz;
    else if (strcmp(key, "ecc-corrected") == 0) knob64 = &g->ecc_corrected;
    else if (strcmp(key, "ecc-uncorrected") == 0) knob64 = &g->ecc_uncorrected;
    else {
        fprintf(stderr, "omai-sim-ctl: unknown key '%s': expected temperature, power-mw, sm-clock-mhz, "
                        "mem-clock-mhz, ecc-corrected or ecc-uncorrected\n", key);
        return -1;
    }
    int unsupported = strcmp(value, "unsupported") == 0;
    char *end;
    unsigned long long v = unsupported ? 0 : strtoull(value, &end, 10);
    uint64_t max = knob32 != NULL ? SIM_UNSUPPORTED32 - 1ull : SIM_UNSUPPORTED64 - 1ull;
    if (!unsupported && (*value == '\0' || *value == '-' || *end != '\0' || v > max)) {
        fprintf(stderr, "omai-sim-ctl: bad value '%s' for %s: expected a number 0..%llu or unsupported\n", value, key,
                (unsigned long long)max);
        return -1;
    }
    if (knob32 != NULL) __atomic_store_n(knob32, unsupported ? SIM_UNSUPPORTED32 : (uint32_t)v, __ATOMIC_RELEASE);
    else __atomic_store_n(knob64, unsupported ? SIM_UNSUPPORTED64 : (uint64_t)v, __ATOMIC_RELEASE);
    return 0;
}

static void show(sim_state *st, const sim_config *cfg) {
    sim_lock(st);
    sim_reap_dead_locked(st);
    for (int g = 0; g < cfg->gpu_count; g++) {
        const sim_gpu_state *gs = &st->gpus[g];
        printf("gpu index=%d uuid=%s total=%" PRIu64 " used=%" PRIu64 " lost=%u alloc_calls=%" PRIu64
               " launch_calls=%" PRIu64 " kernels_run=%" PRIu64 " busy_us=%" PRIu64 " events=%" PRIu64 "\n",
               g, cfg->gpus[g].uuid, gs->total_bytes, sim_used_bytes_locked(st, g), gs->lost, gs->alloc_calls,
               gs->launch_calls, gs->kernels_run, gs->busy_ns / 1000, gs->events_written);
    }
    for (int p = 0; p < SIM_MAX_PROCS; p++) {
        const sim_proc *pr = &st->procs[p];
        if (!pr->active) continue;
        printf("proc pid=%" PRIu32 " nvml_pid=%" PRIu32, pr->pid, pr->nvml_pid);
        for (int g = 0; g < cfg->gpu_count; g++) printf(" gpu%d_bytes=%" PRIu64, g, pr->bytes[g]);
        const omai_sim_counters *c = &pr->counters;
        printf(" alloc_calls=%" PRIu64 " alloc_failures=%" PRIu64 " free_calls=%" PRIu64 " launch_calls=%" PRIu64
               " kernels_run=%" PRIu64 " busy_us=%" PRIu64 " mem_info_calls=%" PRIu64 " proc_address_calls=%" PRIu64
               "\n",
               c->alloc_calls, c->alloc_failures, c->free_calls, c->launch_calls, c->kernels_run, c->busy_ns / 1000,
               c->mem_info_calls, c->proc_address_calls);
    }
    printf("reaped procs=%" PRIu64 " bytes=%" PRIu64 "\n", st->reaped_procs, st->reaped_bytes);
    sim_unlock(st);
}

int main(int argc, char **argv) {
    if (argc < 2) return usage("no command given");
    static sim_runtime rt;
    char err[1024];
    const char *cmd = argv[1];
    sim_open_error e = strcmp(cmd, "reset") == 0 ? sim_reset(&rt, err, sizeof err) : sim_open(&rt, err, sizeof err);
    if (e != SIM_OPEN_OK) {
        fprintf(stderr, "omai-sim-ctl: %s\n", err);
        return 1;
    }
    int gpu;
    if (strcmp(cmd, "show") == 0 && argc == 2) {
        show(rt.st, &rt.cfg);
    } else if (strcmp(cmd, "reset") == 0 && argc == 2) {
        printf("reset %s\n", rt.state_path);
    } else if (strcmp(cmd, "reap") == 0 && argc == 2) {
        sim_lock(rt.st);
        unsigned n = sim_reap_dead_locked(rt.st);
        sim_unlock(rt.st);
        printf("reaped procs=%u\n", n);
    } else if (strcmp(cmd, "inject-xid") == 0 && argc == 4) {
        char *end;
        long xid = strtol(argv[3], &end, 10);
        if (parse_gpu(argv[2], &rt, &gpu) != 0) return 2;
        if (*argv[3] == '\0' || *end != '\0' || xid <= 0 || xid > 1000000) {
            fprintf(stderr, "omai-sim-ctl: bad XID '%s': expected a positive number such as 79\n", argv[3]);
            return 2;
        }
        sim_inject_event(rt.st, gpu, nvmlEventTypeXidCriticalError, (uint64_t)xid);
        printf("injected gpu=%d xid=%ld\n", gpu, xid);
    } else if (strcmp(cmd, "lose-gpu") == 0 && argc == 3) {
        if (parse_gpu(argv[2], &rt, &gpu) != 0) return 2;
        __atomic_store_n(&rt.st->gpus[gpu].lost, 1u, __ATOMIC_RELEASE);
        sim_inject_event(rt.st, gpu, nvmlEventTypeXidCriticalError, 79); /* "GPU has fallen off the bus" */
        printf("lost gpu=%d\n", gpu);
    } else if (strcmp(cmd, "set") == 0 && argc == 5) {
        if (parse_gpu(argv[2], &rt, &gpu) != 0) return 2;
        if (set_telemetry(&rt.st->gpus[gpu], argv[3], argv[4]) != 0) return 2;
        printf("set gpu=%d %s=%s\n", gpu, argv[3], argv[4]);
    } else if (strcmp(cmd, "die-holding-lock") == 0 && argc == 2) {
        sim_lock(rt.st);
        raise(SIGKILL); /* the next locker must get EOWNERDEAD and carry on */
    } else {
        return usage("unknown command or wrong number of arguments");
    }
    return 0;
}
