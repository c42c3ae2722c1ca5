/*
 * sim_core.h - configuration and cross-process state of the simulated GPU
 * driver, shared by the simulated libcuda.so.1, libnvidia-ml.so.1 and
 * omai-sim-ctl (each links its own copy; the state lives in one file).
 *
 * State: one file, $OMAI_SIM_STATE/sim-state, mapped MAP_SHARED by every
 * process. Every mutation happens under one process-shared robust mutex, so a
 * process SIGKILLed inside a critical section leaves the lock recoverable
 * (EOWNERDEAD -> pthread_mutex_consistent); each critical section writes at
 * most a few independent words, so the state stays meaningful. Device memory
 * in use is never a separate counter: it is the sum of the live processes'
 * slots, so releasing a dead process is one slot reset, with nothing to undo.
 */
#ifndef OMAI_SIM_CORE_H
#define OMAI_SIM_CORE_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "omai_sim.h"

#define SIM_MAX_GPUS 16
#define SIM_MAX_PROCS 128
#define SIM_SAMPLES 8192 /* kernel-run ring per GPU */
#define SIM_EVENTS 64    /* NVML event ring per GPU */
#define SIM_UUID_LEN 80
#define SIM_NAME_LEN 96
#define SIM_PCI_LEN 32

#define SIM_STATE_MAGIC 0x314554415453534fULL /* "OSSTATE1" little-endian */
#define SIM_STATE_VERSION 4u
#define SIM_STATE_FILE "sim-state"

#define SIM_UNSUPPORTED32 UINT32_MAX
#define SIM_UNSUPPORTED64 UINT64_MAX
/* Telemetry a fresh state starts with: an idle data-centre card, ECC on and clean. */
#define SIM_DEFAULT_TEMPERATURE_C 45u
#define SIM_DEFAULT_POWER_MW 70000u
#define SIM_DEFAULT_SM_CLOCK_MHZ 1410u
#define SIM_DEFAULT_MEM_CLOCK_MHZ 1593u

#define SIM_DEFAULT_CUDA_VERSION 12080
#define SIM_DEFAULT_DRIVER_VERSION "570.124.06"

/* ------------------------------------------------------------ configuration */

typedef struct sim_gpu_config {
    char uuid[SIM_UUID_LEN];
    char name[SIM_NAME_LEN];
    char pci_bus_id[SIM_PCI_LEN]; /* "0000:17:00.0" */
    unsigned int pci_domain, pci_bus, pci_device, pci_function;
    uint64_t memory_bytes;
    int numa_node; /* -1: none */
    int sms;
    int cc_major, cc_minor;
    unsigned int minor_number;
} sim_gpu_config;

typedef struct sim_config {
    char path[PATH_MAX];
    int gpu_count;
    int cuda_version;                 /* cuDriverGetVersion */
    char driver_version[32];          /* nvmlSystemGetDriverVersion */
    sim_gpu_config gpus[SIM_MAX_GPUS];
} sim_config;

/* Parses the file named by OMAI_SIM_CONFIG. On failure returns -1 and writes
 * one line (file, line, what was expected) into err. */
int sim_config_load(sim_config *cfg, char *err, size_t errlen);

/* ----------------------------------------------------------- shared state */

typedef struct sim_sample { /* one kernel run on a GPU */
    uint32_t pid;           /* as NVML reports it (sim_proc.nvml_pid) */
    uint32_t reserved;
    uint64_t start_ns;      /* CLOCK_MONOTONIC */
    uint64_t end_ns;
} sim_sample;

typedef struct sim_event {
    uint64_t type; /* nvmlEventType* */
    uint64_t data; /* the XID */
    uint64_t time_ns;
} sim_event;

typedef struct sim_gpu_state {
    uint64_t total_bytes;   /* copied from the config that created the file */
    uint64_t busy_until_ns; /* CLOCK_MONOTONIC end of the last kernel queued */
    uint64_t samples_written; /* ring index = samples_written % SIM_SAMPLES */
    uint64_t events_written;  /* ring index = events_written % SIM_EVENTS */
    uint32_t lost;            /* omai-sim-ctl lose-gpu: NVML answers GPU_IS_LOST */
    uint32_t reserved;
    /* Telemetry NVML reports as is (omai-sim-ctl set GPU KEY VALUE); SIM_UNSUPPORTED*: NOT_SUPPORTED. */
    uint32_t temperature_c;
    uint32_t power_mw;
    uint32_t sm_clock_mhz;
    uint32_t mem_clock_mhz;
    uint64_t ecc_corrected;   /* volatile = aggregate in the simulator: no driver reloads to tell apart */
    uint64_t ecc_uncorrected;
    /* Totals over every process that ever ran; never decremented. */
    uint64_t alloc_calls;
    uint64_t launch_calls;
    uint64_t kernels_run;
    uint64_t busy_ns;
    sim_sample samples[SIM_SAMPLES];
    sim_event events[SIM_EVENTS];
} sim_gpu_state;

typedef struct sim_proc {
    uint32_t pid;          /* getpid(): the pid in the process's own namespace */
    uint32_t nvml_pid;     /* outermost pid visible in /proc/self/status NSpid */
    uint64_t start_ticks;  /* /proc/<pid>/stat field 22: detects pid reuse */
    uint64_t pid_ns_inode; /* only processes of the same pid namespace reap it */
    uint32_t active;
    uint32_t reserved;
    uint64_t bytes[SIM_MAX_GPUS]; /* device memory held on each GPU */
    uint8_t has_context[SIM_MAX_GPUS];
    omai_sim_counters counters;
} sim_proc;

typedef struct sim_state {
    uint64_t magic;
    uint32_t version;
    uint32_t gpu_count;
    uint64_t reaped_procs; /* dead processes released */
    uint64_t reaped_bytes; /* device memory released with them */
    /* Bumped after every injected event; nvmlEventSetWait sleeps on it (a futex shared between processes) so
     * a waiting NVML client costs no CPU, as with the real driver, instead of polling the rings. */
    uint32_t events_seq;
    uint32_t reserved;
    pthread_mutex_t lock;
    sim_gpu_state gpus[SIM_MAX_GPUS];
    sim_proc procs[SIM_MAX_PROCS];
} sim_state;

typedef enum sim_open_error {
    SIM_OPEN_OK = 0,
    SIM_OPEN_BAD_CONFIG = 1, /* missing/unreadable/invalid OMAI_SIM_CONFIG */
    SIM_OPEN_BAD_STATE = 2   /* missing/unusable OMAI_SIM_STATE, or another config's state */
} sim_open_error;

typedef struct sim_runtime {
    sim_config cfg;
    sim_state *st;
    char state_path[PATH_MAX];
} sim_runtime;

/* Loads the config and maps (creating if needed) the state file. */
sim_open_error sim_open(sim_runtime *rt, char *err, size_t errlen);

/* Deletes and recreates the state file (omai-sim-ctl reset). */
sim_open_error sim_reset(sim_runtime *rt, char *err, size_t errlen);

void sim_lock(sim_state *st);
void sim_unlock(sim_state *st);

uint64_t sim_now_ns(void);            /* CLOCK_MONOTONIC */
uint64_t sim_mono_to_epoch_us(uint64_t mono_ns);
uint64_t sim_epoch_us_to_mono(uint64_t epoch_us);

/* With the lock held: */
sim_proc *sim_find_or_claim_proc_locked(sim_state *st); /* this process; NULL if full */
unsigned sim_reap_dead_locked(sim_state *st);            /* returns slots released */
uint64_t sim_used_bytes_locked(const sim_state *st, int gpu);

/* Takes the lock. Reserves bytes on gpu for proc unless that would exceed the
 * GPU's memory (after reaping dead processes): returns 0 or -1 (no memory). */
int sim_reserve(sim_state *st, sim_proc *proc, int gpu, uint64_t bytes);
void sim_release(sim_state *st, sim_proc *proc, int gpu, uint64_t bytes);

/* Queues a kernel of dur_ns behind everything already on the GPU and returns
 * its CLOCK_MONOTONIC end time. Records the sample and the counters. */
uint64_t sim_occupy(sim_state *st, sim_proc *proc, int gpu, uint64_t dur_ns);

void sim_sleep_until(uint64_t mono_ns);

/* Appends an NVML event to the GPU's ring (omai-sim-ctl inject-xid). */
void sim_inject_event(sim_state *st, int gpu, uint64_t type, uint64_t data);

/* Parses "80GiB", "512MiB", "1048576": 0 on success. */
int sim_parse_bytes(const char *text, uint64_t *out);

#endif /* OMAI_SIM_CORE_H */
