/* Configuration parsing and the shared, robust state of the simulated driver.
 * See sim_core.h for the model and docs/simulator.md for the config format. */
#include "sim_core.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "omai_nvml.h"

/* ------------------------------------------------------------------ helpers */

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

uint64_t sim_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t epoch_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sim_mono_to_epoch_us(uint64_t mono_ns) {
    int64_t offset = (int64_t)(epoch_ns() - sim_now_ns());
    return (uint64_t)((int64_t)mono_ns + offset) / 1000u;
}

uint64_t sim_epoch_us_to_mono(uint64_t epoch_us) {
    int64_t offset = (int64_t)(epoch_ns() - sim_now_ns());
    int64_t mono = (int64_t)(epoch_us * 1000u) - offset;
    return mono < 0 ? 0 : (uint64_t)mono;
}

void sim_sleep_until(uint64_t mono_ns) {
    struct timespec ts = {.tv_sec = (time_t)(mono_ns / 1000000000ull),
                          .tv_nsec = (long)(mono_ns % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

int sim_parse_bytes(const char *text, uint64_t *out) {
    static const struct { const char *suffix; uint64_t mult; } units[] = {
        {"", 1},           {"B", 1},           {"KiB", 1ull << 10},
        {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
    };
    if (!isdigit((unsigned char)text[0])) return -1;
    errno = 0;
    char *end;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (value > UINT64_MAX / units[i].mult) return -1;
            *out = value * units[i].mult;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------ configuration */

typedef struct token {
    char key[32];
    char value[SIM_NAME_LEN];
} token;

/* Splits `word key=value key="quoted value" ...`; returns the token count or
 * -1 with a message. */
static int tokenize(char *line, char *word, size_t wordlen, token *toks, int max, char *why,
                    size_t whylen) {
    char *p = line;
    while (isspace((unsigned char)*p)) p++;
    size_t n = 0;
    while (*p && !isspace((unsigned char)*p)) {
        if (n + 1 >= wordlen) {
            errf(why, whylen, "line starts with an overlong word");
            return -1;
        }
        word[n++] = *p++;
    }
    word[n] = '\0';
    int count = 0;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (*p == '\0') return count;
        if (count == max) {
            errf(why, whylen, "too many key=value pairs (at most %d)", max);
            return -1;
        }
        token *t = &toks[count];
        size_t k = 0;
        while (*p && *p != '=' && !isspace((unsigned char)*p)) {
            if (k + 1 >= sizeof t->key) {
                errf(why, whylen, "overlong key");
                return -1;
            }
            t->key[k++] = *p++;
        }
        t->key[k] = '\0';
        if (*p != '=' || k == 0) {
            errf(why, whylen, "expected key=value, got '%s'", t->key);
            return -1;
        }
        p++;
        size_t v = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (v + 1 >= sizeof t->value) {
                    errf(why, whylen, "value of '%s' is longer than %zu characters", t->key,
                         sizeof t->value - 1);
                    return -1;
                }
                t->value[v++] = *p++;
            }
            if (*p != '"') {
                errf(why, whylen, "unterminated quoted value of '%s'", t->key);
                return -1;
            }
            p++;
        } else {
            while (*p && !isspace((unsigned char)*p)) {
                if (v + 1 >= sizeof t->value) {
                    errf(why, whylen, "value of '%s' is longer than %zu characters", t->key,
                         sizeof t->value - 1);
                    return -1;
                }
                t->value[v++] = *p++;
            }
        }
        t->value[v] = '\0';
        count++;
    }
}

/* "GPU-" then 32 hex digits, dashes allowed anywhere after the prefix. */
static int uuid_valid(const char *v) {
    if (strncmp(v, "GPU-", 4) != 0 || strlen(v) >= SIM_UUID_LEN) return 0;
    int digits = 0;
    for (const char *p = v + 4; *p; p++) {
        if (isxdigit((unsigned char)*p)) digits++;
        else if (*p != '-') return 0;
    }
    return digits == 32;
}

static int parse_int(const char *text, long lo, long hi, long *out) {
    if (*text == '\0') return -1;
    errno = 0;
    char *end;
    long v = strtol(text, &end, 0);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_gpu(sim_config *cfg, const token *toks, int n, char *why, size_t whylen) {
    if (cfg->gpu_count == SIM_MAX_GPUS) {
        errf(why, whylen, "too many gpu lines: the simulator supports at most %d GPUs",
             SIM_MAX_GPUS);
        return -1;
    }
    int index = cfg->gpu_count;
    sim_gpu_config *g = &cfg->gpus[index];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "NVIDIA H100 80GB HBM3");
    g->pci_bus = 0x17u + (unsigned)index;
    g->numa_node = 0;
    g->sms = 132;
    g->cc_major = 9;
    g->cc_minor = 0;
    g->minor_number = (unsigned)index;
    int have_uuid = 0, have_memory = 0;
    for (int i = 0; i < n; i++) {
        const char *k = toks[i].key, *v = toks[i].value;
        long num;
        if (strcmp(k, "index") == 0) {
            if (parse_int(v, 0, SIM_MAX_GPUS - 1, &num) != 0 || num != index) {
                errf(why, whylen, "bad index '%s': expected %d (gpu lines are numbered 0, 1, ... in order)", v, index);
                return -1;
            }
        } else if (strcmp(k, "uuid") == 0) {
            if (!uuid_valid(v)) {
                errf(why, whylen, "bad uuid '%s': expected GPU- and 32 hex digits (dashes allowed), e.g. GPU-8f6d2c1e-0000-4000-8000-000000000000", v);
                return -1;
            }
            memcpy(g->uuid, v, strlen(v) + 1); /* uuid_valid checked the length */
            have_uuid = 1;
        } else if (strcmp(k, "name") == 0) {
            if (*v == '\0' || strlen(v) >= NVML_DEVICE_NAME_BUFFER_SIZE) {
                errf(why, whylen, "bad name '%s': expected 1 to %d characters", v, NVML_DEVICE_NAME_BUFFER_SIZE - 1);
                return -1;
            }
            snprintf(g->name, sizeof g->name, "%s", v);
        } else if (strcmp(k, "memory") == 0) {
            if (sim_parse_bytes(v, &g->memory_bytes) != 0 || g->memory_bytes == 0) {
                errf(why, whylen, "bad memory value '%s': expected a positive integer with an optional unit B, KiB, MiB, GiB or TiB (e.g. 80GiB)", v);
                return -1;
            }
            have_memory = 1;
        } else if (strcmp(k, "pci") == 0) {
            unsigned d, b, dev, fn;
            char tail;
            if (sscanf(v, "%4x:%2x:%2x.%1x%c", &d, &b, &dev, &fn, &tail) != 4 || dev > 0x1f || fn > 7) {
                errf(why, whylen, "bad pci '%s': expected domain:bus:device.function in hex, e.g. 0000:17:00.0", v);
                return -1;
            }
            g->pci_domain = d;
            g->pci_bus = b;
            g->pci_device = dev;
            g->pci_function = fn;
        } else if (strcmp(k, "numa") == 0) {
            if (parse_int(v, -1, 1023, &num) != 0) {
                errf(why, whylen, "bad numa '%s': expected a NUMA node number 0..1023, or -1 for none", v);
                return -1;
            }
            g->numa_node = (int)num;
        } else if (strcmp(k, "sms") == 0) {
            if (parse_int(v, 1, 1024, &num) != 0) {
                errf(why, whylen, "bad sms '%s': expected a multiprocessor count 1..1024", v);
                return -1;
            }
            g->sms = (int)num;
        } else if (strcmp(k, "cc") == 0) {
            int maj, min;
            char tail;
            if (sscanf(v, "%d.%d%c", &maj, &min, &tail) != 2 || maj < 1 || maj > 20 || min < 0 || min > 9) {
                errf(why, whylen, "bad cc '%s': expected a compute capability major.minor, e.g. 9.0", v);
                return -1;
            }
            g->cc_major = maj;
            g->cc_minor = min;
        } else if (strcmp(k, "minor") == 0) {
            if (parse_int(v, 0, 255, &num) != 0) {
                errf(why, whylen, "bad minor '%s': expected a device minor number 0..255", v);
                return -1;
            }
            g->minor_number = (unsigned)num;
        } else {
            errf(why, whylen, "unknown key '%s' on a gpu line: expected index, uuid, name, memory, pci, numa, sms, cc or minor", k);
            return -1;
        }
    }
    if (!have_uuid || !have_memory) {
        errf(why, whylen, "gpu line lacks %s: expected at least uuid=GPU-... and memory=<bytes>",
             !have_uuid ? "uuid" : "memory");
        return -1;
    }
    snprintf(g->pci_bus_id, sizeof g->pci_bus_id, "%04x:%02x:%02x.%x", g->pci_domain, g->pci_bus,
             g->pci_device, g->pci_function);
    for (int i = 0; i < index; i++) {
        if (strcmp(cfg->gpus[i].uuid, g->uuid) == 0) {
            errf(why, whylen, "uuid %s is already used by gpu %d: expected unique uuids", g->uuid, i);
            return -1;
        }
        if (strcmp(cfg->gpus[i].pci_bus_id, g->pci_bus_id) == 0) {
            errf(why, whylen, "pci %s is already used by gpu %d: expected unique pci addresses", g->pci_bus_id, i);
            return -1;
        }
    }
    cfg->gpu_count++;
    return 0;
}

static int parse_driver(sim_config *cfg, const token *toks, int n, char *why, size_t whylen) {
    for (int i = 0; i < n; i++) {
        long num;
        if (strcmp(toks[i].key, "cuda") == 0) {
            if (parse_int(toks[i].value, 2000, 99990, &num) != 0) {
                errf(why, whylen, "bad cuda '%s': expected a CUDA version as 1000*major+10*minor, e.g. 12080", toks[i].value);
                return -1;
            }
            cfg->cuda_version = (int)num;
        } else if (strcmp(toks[i].key, "version") == 0) {
            if (strlen(toks[i].value) >= sizeof cfg->driver_version || toks[i].value[0] == '\0') {
                errf(why, whylen, "bad version '%s': expected a driver version such as 570.124.06", toks[i].value);
                return -1;
            }
            memcpy(cfg->driver_version, toks[i].value, strlen(toks[i].value) + 1); /* length checked above */
        } else {
            errf(why, whylen, "unknown key '%s' on the driver line: expected cuda or version", toks[i].key);
            return -1;
        }
    }
    return 0;
}

int sim_config_load(sim_config *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    cfg->cuda_version = SIM_DEFAULT_CUDA_VERSION;
    snprintf(cfg->driver_version, sizeof cfg->driver_version, "%s", SIM_DEFAULT_DRIVER_VERSION);
    const char *path = getenv("OMAI_SIM_CONFIG");
    if (path == NULL || *path == '\0') {
        errf(err, errlen, "OMAI_SIM_CONFIG is not set: expected the path of a simulator config file");
        return -1;
    }
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        errf(err, errlen, "cannot open config %s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            errf(err, errlen, "%s:%d: line longer than %zu characters", path, lineno, sizeof line - 2);
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash != NULL) *hash = '\0';
        char word[16];
        token toks[16];
        char why[400];
        int n = tokenize(line, word, sizeof word, toks, 16, why, sizeof why);
        if (n < 0) {
            errf(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
        if (word[0] == '\0') continue;
        if (strcmp(word, "gpu") == 0) {
            rc = parse_gpu(cfg, toks, n, why, sizeof why);
        } else if (strcmp(word, "driver") == 0) {
            rc = parse_driver(cfg, toks, n, why, sizeof why);
        } else {
            errf(why, sizeof why, "unknown line type '%s': expected 'gpu key=value...' or 'driver key=value...'", word);
            rc = -1;
        }
        if (rc != 0) {
            errf(err, errlen, "%s:%d: %s", path, lineno, why);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        errf(err, errlen, "cannot read config %s: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    if (rc == 0 && cfg->gpu_count == 0) {
        errf(err, errlen, "%s: no gpu lines: expected at least one 'gpu uuid=GPU-... memory=80GiB'", path);
        rc = -1;
    }
    return rc;
}

/* ------------------------------------------------------------ process identity */

/* Field 22 of /proc/<pid>/stat, or 0 if the process does not exist. */
static uint64_t proc_start_ticks(uint32_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%" PRIu32 "/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may contain spaces */
    if (p == NULL) return 0;
    p++;
    /* after ')' come fields 3.. ; starttime is field 22 */
    unsigned long long ticks = 0;
    char state = 0;
    for (int field = 3; field <= 22 && *p; field++) {
        while (*p == ' ') p++;
        if (field == 3) state = *p;
        if (field == 22) ticks = strtoull(p, NULL, 10);
        while (*p && *p != ' ') p++;
    }
    if (state == 'Z' || state == 'X') return 0; /* exited, not yet reaped by its parent */
    return ticks;
}

static uint64_t self_pid_ns_inode(void) {
    struct stat sb;
    if (stat("/proc/self/ns/pid", &sb) != 0) return 0;
    return (uint64_t)sb.st_ino;
}

/* The first NSpid entry is the pid in the outermost namespace /proc shows. */
static uint32_t self_outer_pid(void) {
    FILE *f = fopen("/proc/self/status", "r");
    uint32_t pid = (uint32_t)getpid();
    if (f == NULL) return pid;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "NSpid:", 6) == 0) {
            unsigned long v = strtoul(line + 6, NULL, 10);
            if (v != 0) pid = (uint32_t)v;
            break;
        }
    }
    fclose(f);
    return pid;
}

/* ---------------------------------------------------------------- the state */

void sim_lock(sim_state *st) {
    int rc = pthread_mutex_lock(&st->lock);
    if (rc == EOWNERDEAD) {
        /* The holder died mid-update. Every critical section leaves the
         * state valid after each single store, so just mark it consistent. */
        pthread_mutex_consistent(&st->lock);
    } else if (rc != 0) {
        fprintf(stderr, "omai-sim: state lock failed: %s\n", strerror(rc));
        abort();
    }
}

void sim_unlock(sim_state *st) { pthread_mutex_unlock(&st->lock); }

static int init_state(sim_state *st, const sim_config *cfg) {
    memset(st, 0, sizeof *st);
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0) return -1;
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&st->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) return -1;
    st->version = SIM_STATE_VERSION;
    st->gpu_count = (uint32_t)cfg->gpu_count;
    for (int i = 0; i < cfg->gpu_count; i++) {
        sim_gpu_state *g = &st->gpus[i];
        g->total_bytes = cfg->gpus[i].memory_bytes;
        g->temperature_c = SIM_DEFAULT_TEMPERATURE_C;
        g->power_mw = SIM_DEFAULT_POWER_MW;
        g->sm_clock_mhz = SIM_DEFAULT_SM_CLOCK_MHZ;
        g->mem_clock_mhz = SIM_DEFAULT_MEM_CLOCK_MHZ;
        g->ecc_corrected = 0;
        g->ecc_uncorrected = 0;
    }
    __atomic_store_n(&st->magic, SIM_STATE_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

static sim_open_error map_state(sim_runtime *rt, int recreate, char *err, size_t errlen) {
    const char *dir = getenv("OMAI_SIM_STATE");
    if (dir == NULL || *dir == '\0') {
        errf(err, errlen, "OMAI_SIM_STATE is not set: expected a writable directory for the simulator's shared state");
        return SIM_OPEN_BAD_STATE;
    }
    snprintf(rt->state_path, sizeof rt->state_path, "%s/%s", dir, SIM_STATE_FILE);
    if (recreate) unlink(rt->state_path);
    int fd = open(rt->state_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        errf(err, errlen, "cannot open state %s: %s (OMAI_SIM_STATE must be a writable directory)", rt->state_path, strerror(errno));
        return SIM_OPEN_BAD_STATE;
    }
    /* flock serialises first-time initialisation and dies with its holder. */
    if (flock(fd, LOCK_EX) != 0 || ftruncate(fd, (off_t)sizeof(sim_state)) != 0) {
        errf(err, errlen, "cannot prepare state %s: %s", rt->state_path, strerror(errno));
        close(fd);
        return SIM_OPEN_BAD_STATE;
    }
    void *map = mmap(NULL, sizeof(sim_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        errf(err, errlen, "cannot map state %s: %s", rt->state_path, strerror(errno));
        close(fd);
        return SIM_OPEN_BAD_STATE;
    }
    sim_state *st = map;
    sim_open_error result = SIM_OPEN_OK;
    if (__atomic_load_n(&st->magic, __ATOMIC_ACQUIRE) != SIM_STATE_MAGIC) {
        if (init_state(st, &rt->cfg) != 0) {
            errf(err, errlen, "cannot initialise the lock in %s", rt->state_path);
            result = SIM_OPEN_BAD_STATE;
        }
    } else if (st->version != SIM_STATE_VERSION || st->gpu_count != (uint32_t)rt->cfg.gpu_count) {
        errf(err, errlen, "state %s was created for a different config (%" PRIu32 " GPUs, version %" PRIu32 "; config %s has %d): run omai-sim-ctl reset or use a fresh OMAI_SIM_STATE",
             rt->state_path, st->gpu_count, st->version, rt->cfg.path, rt->cfg.gpu_count);
        result = SIM_OPEN_BAD_STATE;
    } else {
        for (int i = 0; i < rt->cfg.gpu_count; i++) {
            if (st->gpus[i].total_bytes != rt->cfg.gpus[i].memory_bytes) {
                errf(err, errlen, "state %s was created with %" PRIu64 " bytes on gpu %d but config %s says %" PRIu64 ": run omai-sim-ctl reset or use a fresh OMAI_SIM_STATE",
                     rt->state_path, st->gpus[i].total_bytes, i, rt->cfg.path, rt->cfg.gpus[i].memory_bytes);
                result = SIM_OPEN_BAD_STATE;
                break;
            }
        }
    }
    flock(fd, LOCK_UN);
    close(fd);
    if (result != SIM_OPEN_OK) {
        munmap(map, sizeof(sim_state));
        return result;
    }
    rt->st = st;
    return SIM_OPEN_OK;
}

sim_open_error sim_open(sim_runtime *rt, char *err, size_t errlen) {
    if (sim_config_load(&rt->cfg, err, errlen) != 0) return SIM_OPEN_BAD_CONFIG;
    return map_state(rt, 0, err, errlen);
}

sim_open_error sim_reset(sim_runtime *rt, char *err, size_t errlen) {
    if (sim_config_load(&rt->cfg, err, errlen) != 0) return SIM_OPEN_BAD_CONFIG;
    return map_state(rt, 1, err, errlen);
}

sim_proc *sim_find_or_claim_proc_locked(sim_state *st) {
    uint32_t pid = (uint32_t)getpid();
    uint64_t ticks = proc_start_ticks(pid);
    uint64_t ns = self_pid_ns_inode();
    sim_proc *free_slot = NULL;
    for (int i = 0; i < SIM_MAX_PROCS; i++) {
        sim_proc *p = &st->procs[i];
        if (p->active && p->pid == pid && p->start_ticks == ticks && p->pid_ns_inode == ns) return p;
        if (!p->active && free_slot == NULL) free_slot = p;
    }
    if (free_slot == NULL) {
        sim_reap_dead_locked(st);
        for (int i = 0; i < SIM_MAX_PROCS && free_slot == NULL; i++)
            if (!st->procs[i].active) free_slot = &st->procs[i];
        if (free_slot == NULL) return NULL;
    }
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->pid = pid;
    free_slot->nvml_pid = self_outer_pid();
    free_slot->start_ticks = ticks;
    free_slot->pid_ns_inode = ns;
    free_slot->active = 1;
    return free_slot;
}

unsigned sim_reap_dead_locked(sim_state *st) {
    uint64_t ns = self_pid_ns_inode();
    unsigned reaped = 0;
    for (int i = 0; i < SIM_MAX_PROCS; i++) {
        sim_proc *p = &st->procs[i];
        if (!p->active || p->pid_ns_inode != ns) continue; /* other namespaces: not ours to judge */
        if (proc_start_ticks(p->pid) == p->start_ticks) continue;
        uint64_t bytes = 0;
        for (int g = 0; g < SIM_MAX_GPUS; g++) bytes += p->bytes[g];
        p->active = 0; /* one store releases everything the slot held */
        st->reaped_procs++;
        st->reaped_bytes += bytes;
        reaped++;
    }
    return reaped;
}

uint64_t sim_used_bytes_locked(const sim_state *st, int gpu) {
    uint64_t used = 0;
    for (int i = 0; i < SIM_MAX_PROCS; i++)
        if (st->procs[i].active) used += st->procs[i].bytes[gpu];
    return used;
}

int sim_reserve(sim_state *st, sim_proc *proc, int gpu, uint64_t bytes) {
    sim_lock(st);
    st->gpus[gpu].alloc_calls++;
    uint64_t total = st->gpus[gpu].total_bytes;
    uint64_t used = sim_used_bytes_locked(st, gpu);
    if (bytes > total - (used < total ? used : total) && sim_reap_dead_locked(st) > 0)
        used = sim_used_bytes_locked(st, gpu);
    int rc = -1;
    if (used <= total && bytes <= total - used) {
        proc->bytes[gpu] += bytes;
        rc = 0;
    }
    sim_unlock(st);
    return rc;
}

void sim_release(sim_state *st, sim_proc *proc, int gpu, uint64_t bytes) {
    sim_lock(st);
    proc->bytes[gpu] = proc->bytes[gpu] >= bytes ? proc->bytes[gpu] - bytes : 0;
    sim_unlock(st);
}

uint64_t sim_occupy(sim_state *st, sim_proc *proc, int gpu, uint64_t dur_ns) {
    uint64_t now = sim_now_ns();
    sim_lock(st);
    sim_gpu_state *g = &st->gpus[gpu];
    uint64_t start = g->busy_until_ns > now ? g->busy_until_ns : now;
    uint64_t end = start + dur_ns;
    g->busy_until_ns = end;
    sim_sample *s = &g->samples[g->samples_written % SIM_SAMPLES];
    s->pid = proc->nvml_pid;
    s->start_ns = start;
    s->end_ns = end;
    g->samples_written++;
    g->kernels_run++;
    g->busy_ns += dur_ns;
    proc->counters.kernels_run++;
    proc->counters.busy_ns += dur_ns;
    sim_unlock(st);
    return end;
}

void sim_inject_event(sim_state *st, int gpu, uint64_t type, uint64_t data) {
    sim_lock(st);
    sim_gpu_state *g = &st->gpus[gpu];
    sim_event *e = &g->events[g->events_written % SIM_EVENTS];
    e->type = type;
    e->data = data;
    e->time_ns = sim_now_ns();
    g->events_written++;
    __atomic_add_fetch(&st->events_seq, 1u, __ATOMIC_RELEASE);
    sim_unlock(st);
    syscall(SYS_futex, &st->events_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
