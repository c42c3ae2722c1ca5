/*
 * omai-shm-tool: create, inspect and change OMAI allocation files without the
 * Java agent (real-GPU checks, debugging a node). Same layout and creation
 * protocol as the agent's AllocationFiles.create: every field written, the
 * magic last, then an atomic rename into place.
 *
 *   omai-shm-tool create DIR UUID=LIMIT [UUID=LIMIT...]   LIMIT: bytes, 4GiB, 512MiB, "unlimited"
 *   omai-shm-tool show DIR
 *   omai-shm-tool set-limit DIR INDEX LIMIT              seqlocked update of one device's limit
 *   omai-shm-tool set-compute DIR INDEX QUOTA MODE       enforce compute: QUOTA milli-GPU 1..1000,
 *                                                        MODE hard-cap | work-conserving
 *   omai-shm-tool grant DIR INDEX NS                     add NS of GPU time to the device's grant
 *   omai-shm-tool agent PERIOD_MS SECONDS COST_NS DIR... a minimal stand-in for the agent's compute
 *                                                        loop where no Java runs (real-GPU checks)
 *
 * The real compute controller is the Java agent's ComputeControlLoop: it
 * measures each container's GPU time through NVML and calibrates the launch
 * cost. `agent` measures nothing: every PERIOD_MS it grants each enforced
 * device quota x period (never more than one period ahead of what was spent,
 * as the hard cap does), sets the launch cost to COST_NS (the caller's known
 * kernel length) and writes the heartbeat.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "omai_shm.h"

static int usage(const char *why) {
    fprintf(stderr,
            "omai-shm-tool: %s\n"
            "usage: omai-shm-tool create DIR UUID=LIMIT [UUID=LIMIT...]\n"
            "       omai-shm-tool show DIR\n"
            "       omai-shm-tool set-limit DIR INDEX LIMIT\n"
            "       omai-shm-tool set-compute DIR INDEX QUOTA hard-cap|work-conserving\n"
            "       omai-shm-tool grant DIR INDEX NS\n"
            "       omai-shm-tool agent PERIOD_MS SECONDS COST_NS DIR...\n"
            "  LIMIT: a byte count with an optional KiB/MiB/GiB/TiB suffix, or \"unlimited\"\n",
            why);
    return 2;
}

static int parse_limit(const char *s, uint64_t *out) {
    if (strcmp(s, "unlimited") == 0) {
        *out = OMAI_MEMORY_UNLIMITED;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-') return -1;
    static const struct { const char *suffix; unsigned shift; } units[] = {
        {"", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (units[i].shift && v > (UINT64_MAX >> units[i].shift)) return -1;
            *out = (uint64_t)v << units[i].shift;
            return *out == OMAI_MEMORY_UNLIMITED ? -1 : 0;
        }
    }
    return -1;
}

static uint64_t now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Writes size bytes from buf to dir/name via a temporary file and rename. */
static int write_file(const char *dir, const char *name, const void *buf, size_t size, mode_t mode) {
    char tmp[4096], dst[4096];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "omai-shm-tool: cannot create %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    const char *p = buf;
    size_t left = size;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n <= 0) {
            fprintf(stderr, "omai-shm-tool: cannot write %s: %s\n", tmp, strerror(errno));
            close(fd);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, dst) != 0) {
        fprintf(stderr, "omai-shm-tool: cannot finish %s: %s\n", dst, strerror(errno));
        return -1;
    }
    return 0;
}

static int cmd_create(const char *dir, int n, char **specs) {
    if (n < 1 || n > (int)OMAI_MAX_DEVICES) return usage("create needs 1..16 UUID=LIMIT arguments");
    static omai_control_file c;
    static omai_usage_file u;
    memset(&c, 0, sizeof c);
    memset(&u, 0, sizeof u);
    for (int i = 0; i < n; i++) {
        char *eq = strrchr(specs[i], '=');
        uint64_t limit;
        if (!eq || eq == specs[i] || (size_t)(eq - specs[i]) >= OMAI_UUID_LEN || parse_limit(eq + 1, &limit) != 0) {
            fprintf(stderr, "omai-shm-tool: device '%s' is not UUID=LIMIT (UUID < %u characters, LIMIT bytes "
                            "such as 4GiB or \"unlimited\")\n", specs[i], OMAI_UUID_LEN);
            return 2;
        }
        omai_control_device *d = &c.devices[i];
        memcpy(d->uuid, specs[i], (size_t)(eq - specs[i]));
        d->memory_limit_bytes = limit;
        d->compute_quota_milli = 1000;
        d->compute_mode = OMAI_COMPUTE_MODE_HARD_CAP;
        d->host_index = (uint32_t)i;
    }
    c.header.abi_version = OMAI_ABI_VERSION;
    c.header.header_size = sizeof(omai_control_header);
    c.header.device_record_size = sizeof(omai_control_device);
    c.header.device_count = (uint32_t)n;
    c.header.heartbeat_ns = now_ns(CLOCK_MONOTONIC);
    c.header.compute_period_us = 100000;
    c.header.created_ns = now_ns(CLOCK_REALTIME);
    snprintf(c.header.label, sizeof c.header.label, "omai-shm-tool");
    c.header.magic = OMAI_CONTROL_MAGIC;

    u.header.abi_version = OMAI_ABI_VERSION;
    u.header.header_size = sizeof(omai_usage_header);
    u.header.device_record_size = sizeof(omai_usage_device);
    u.header.slot_size = sizeof(omai_usage_slot);
    u.header.device_count = (uint32_t)n;
    u.header.slot_count = OMAI_MAX_SLOTS;
    u.header.devices_offset = OMAI_USAGE_DEVICES_OFFSET;
    u.header.slots_offset = OMAI_USAGE_SLOTS_OFFSET;
    u.header.magic = OMAI_USAGE_MAGIC;

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "omai-shm-tool: cannot create directory %s: %s\n", dir, strerror(errno));
        return 1;
    }
    /* control: read-only for the container; usage: any uid of the container claims slots. */
    if (write_file(dir, "control", &c, sizeof c, 0644) != 0 || write_file(dir, "usage", &u, sizeof u, 0666) != 0)
        return 1;
    printf("created %s/control and %s/usage with %d device(s)\n", dir, dir, n);
    return 0;
}

static void *map(const char *dir, const char *name, size_t size, int writable) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, writable ? O_RDWR : O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || (size_t)st.st_size < size) {
        fprintf(stderr, "omai-shm-tool: %s: %s\n", path, fd < 0 ? strerror(errno) : "shorter than the ABI size");
        if (fd >= 0) close(fd);
        return NULL;
    }
    void *p = mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static void print_limit(uint64_t v) {
    if (v == OMAI_MEMORY_UNLIMITED) printf("unlimited");
    else printf("%" PRIu64, v);
}

static int cmd_show(const char *dir) {
    const omai_control_file *c = map(dir, "control", sizeof *c, 0);
    const omai_usage_file *u = map(dir, "usage", sizeof *u, 0);
    if (!c || !u) return 1;
    if (c->header.magic != OMAI_CONTROL_MAGIC || u->header.magic != OMAI_USAGE_MAGIC) {
        fprintf(stderr, "omai-shm-tool: %s: bad magic (not OMAI allocation files)\n", dir);
        return 1;
    }
    uint32_t n = c->header.device_count > OMAI_MAX_DEVICES ? OMAI_MAX_DEVICES : c->header.device_count;
    printf("allocation %s label=\"%.*s\" epoch=%" PRIu64 " devices=%u\n", dir, (int)OMAI_LABEL_LEN,
           c->header.label, __atomic_load_n(&c->header.epoch, __ATOMIC_ACQUIRE), n);
    for (uint32_t d = 0; d < n; d++) {
        const omai_usage_device *t = &u->devices[d];
        printf("device %u uuid=%.*s limit=", d, (int)OMAI_UUID_LEN, c->devices[d].uuid);
        print_limit(c->devices[d].memory_limit_bytes);
        printf(" reserved=%" PRIu64 " peak=%" PRIu64 " denied=%" PRIu64, __atomic_load_n(&t->bytes_reserved, __ATOMIC_ACQUIRE),
               __atomic_load_n(&t->bytes_peak, __ATOMIC_ACQUIRE), __atomic_load_n(&t->denied_allocs, __ATOMIC_ACQUIRE));
        printf(" compute=%s quota=%u mode=%u grant_ns=%" PRIu64 " cost_ns=%" PRIu64 " consumed_ns=%" PRIu64
               " launches=%" PRIu64 " throttled_ns=%" PRIu64 "\n",
               (c->header.flags & OMAI_CONTROL_FLAG_COMPUTE_ENFORCED) ? "enforced" : "off",
               c->devices[d].compute_quota_milli, c->devices[d].compute_mode,
               __atomic_load_n(&c->devices[d].token_grant_ns, __ATOMIC_ACQUIRE),
               __atomic_load_n(&c->devices[d].launch_cost_ns, __ATOMIC_ACQUIRE),
               __atomic_load_n(&t->tokens_consumed_ns, __ATOMIC_ACQUIRE), __atomic_load_n(&t->launches, __ATOMIC_ACQUIRE),
               __atomic_load_n(&t->throttled_ns, __ATOMIC_ACQUIRE));
    }
    for (uint32_t s = 0; s < OMAI_MAX_SLOTS; s++) {
        const omai_usage_slot *sl = &u->slots[s];
        uint32_t pid = __atomic_load_n(&sl->pid, __ATOMIC_ACQUIRE);
        if (!pid) continue;
        printf("slot %u pid=%u state=%u start=%" PRIu64 " pidns=%" PRIu64, s, pid,
               __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE), sl->start_time_ticks, sl->pid_ns_inode);
        for (uint32_t d = 0; d < n; d++)
            printf(" dev%u=%" PRIu64, d, __atomic_load_n(&sl->devices[d].bytes_in_use, __ATOMIC_ACQUIRE));
        printf("\n");
    }
    printf("reclaimed slots=%" PRIu64 " bytes=%" PRIu64 "\n", u->header.reclaimed_slots, u->header.reclaimed_bytes);
    return 0;
}

static int cmd_set_limit(const char *dir, const char *index, const char *limit_text) {
    omai_control_file *c = map(dir, "control", sizeof *c, 1);
    if (!c) return 1;
    char *end;
    unsigned long i = strtoul(index, &end, 10);
    uint64_t limit;
    if (*end || i >= c->header.device_count) {
        fprintf(stderr, "omai-shm-tool: device index '%s' is not 0..%u\n", index, c->header.device_count - 1);
        return 2;
    }
    if (parse_limit(limit_text, &limit) != 0) return usage("bad LIMIT");
    /* The agent's seqlock protocol: odd while writing, even when done. */
    uint64_t e = __atomic_load_n(&c->header.epoch, __ATOMIC_ACQUIRE);
    if (e & 1) e++; /* a writer died mid-update: finish it */
    __atomic_store_n(&c->header.epoch, e + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&c->devices[i].memory_limit_bytes, limit, __ATOMIC_RELAXED);
    __atomic_store_n(&c->header.epoch, e + 2, __ATOMIC_RELEASE);
    printf("device %lu limit set; epoch %" PRIu64 "\n", i, e + 2);
    return 0;
}

static int parse_index(const omai_control_file *c, const char *index, unsigned long *out) {
    char *end;
    errno = 0;
    unsigned long i = strtoul(index, &end, 10);
    if (errno || end == index || *end || i >= c->header.device_count) {
        fprintf(stderr, "omai-shm-tool: device index '%s' is not 0..%u\n", index, c->header.device_count - 1);
        return -1;
    }
    *out = i;
    return 0;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static int cmd_set_compute(const char *dir, const char *index, const char *quota_text, const char *mode_text) {
    omai_control_file *c = map(dir, "control", sizeof *c, 1);
    if (!c) return 1;
    unsigned long i;
    uint64_t quota;
    uint32_t mode;
    if (parse_index(c, index, &i) != 0) return 2;
    if (parse_u64(quota_text, 1, 1000, &quota) != 0) return usage("QUOTA must be 1..1000 (milli-GPU)");
    if (strcmp(mode_text, "hard-cap") == 0) mode = OMAI_COMPUTE_MODE_HARD_CAP;
    else if (strcmp(mode_text, "work-conserving") == 0) mode = OMAI_COMPUTE_MODE_WORK_CONSERVING;
    else return usage("MODE must be hard-cap or work-conserving");
    uint64_t e = __atomic_load_n(&c->header.epoch, __ATOMIC_ACQUIRE);
    if (e & 1) e++;
    __atomic_store_n(&c->header.epoch, e + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&c->devices[i].compute_quota_milli, (uint32_t)quota, __ATOMIC_RELAXED);
    __atomic_store_n(&c->devices[i].compute_mode, mode, __ATOMIC_RELAXED);
    __atomic_store_n(&c->header.flags, c->header.flags | OMAI_CONTROL_FLAG_COMPUTE_ENFORCED, __ATOMIC_RELAXED);
    __atomic_store_n(&c->header.epoch, e + 2, __ATOMIC_RELEASE);
    printf("device %lu compute quota %" PRIu64 " %s, enforced; epoch %" PRIu64 "\n", i, quota, mode_text, e + 2);
    return 0;
}

static int cmd_grant(const char *dir, const char *index, const char *ns_text) {
    omai_control_file *c = map(dir, "control", sizeof *c, 1);
    if (!c) return 1;
    unsigned long i;
    uint64_t ns;
    if (parse_index(c, index, &i) != 0) return 2;
    if (parse_u64(ns_text, 0, UINT64_MAX / 2, &ns) != 0) return usage("NS must be a count of nanoseconds");
    /* The grant only grows (a lower one would read as a debt): one writer adds. */
    uint64_t g = __atomic_add_fetch(&c->devices[i].token_grant_ns, ns, __ATOMIC_RELEASE);
    __atomic_store_n(&c->header.heartbeat_ns, now_ns(CLOCK_MONOTONIC), __ATOMIC_RELEASE);
    printf("device %lu grant %" PRIu64 " ns\n", i, g);
    return 0;
}

static int cmd_agent(int argc, char **argv) {
    uint64_t period_ms, seconds, cost;
    if (parse_u64(argv[0], 1, 10000, &period_ms) != 0 || parse_u64(argv[1], 1, 86400, &seconds) != 0 ||
        parse_u64(argv[2], 1, 1000000000, &cost) != 0)
        return usage("agent needs PERIOD_MS (1..10000) SECONDS (1..86400) COST_NS (1..1e9) DIR...");
    int n = argc - 3;
    omai_control_file *c[64];
    const omai_usage_file *u[64];
    if (n < 1 || n > 64) return usage("agent takes 1..64 allocation directories");
    for (int k = 0; k < n; k++) {
        c[k] = map(argv[3 + k], "control", sizeof *c[k], 1);
        u[k] = map(argv[3 + k], "usage", sizeof *u[k], 0);
        if (!c[k] || !u[k]) return 1;
    }
    uint64_t period = period_ms * 1000000ull, t0 = now_ns(CLOCK_MONOTONIC), end = t0 + seconds * 1000000000ull;
    for (uint64_t tick = 1; t0 + tick * period <= end; tick++) {
        uint64_t at = t0 + tick * period;
        struct timespec ts = {.tv_sec = (time_t)(at / 1000000000ull), .tv_nsec = (long)(at % 1000000000ull)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        for (int k = 0; k < n; k++) {
            uint32_t devs = c[k]->header.device_count > OMAI_MAX_DEVICES ? OMAI_MAX_DEVICES : c[k]->header.device_count;
            for (uint32_t d = 0; d < devs && (c[k]->header.flags & OMAI_CONTROL_FLAG_COMPUTE_ENFORCED); d++) {
                omai_control_device *dev = &c[k]->devices[d];
                uint64_t share = period * __atomic_load_n(&dev->compute_quota_milli, __ATOMIC_RELAXED) / 1000;
                uint64_t grant = __atomic_load_n(&dev->token_grant_ns, __ATOMIC_RELAXED);
                uint64_t spent = __atomic_load_n(&u[k]->devices[d].tokens_consumed_ns, __ATOMIC_ACQUIRE);
                uint64_t next = grant + share < spent + share ? grant + share : spent + share;
                __atomic_store_n(&dev->launch_cost_ns, cost, __ATOMIC_RELEASE);
                if (next > grant) __atomic_store_n(&dev->token_grant_ns, next, __ATOMIC_RELEASE);
            }
            __atomic_store_n(&c[k]->header.heartbeat_ns, now_ns(CLOCK_MONOTONIC), __ATOMIC_RELEASE);
        }
    }
    for (int k = 0; k < n; k++) {
        printf("agent %s consumed_ns=%" PRIu64 " launches=%" PRIu64 " throttled_ns=%" PRIu64 "\n", argv[3 + k],
               __atomic_load_n(&u[k]->devices[0].tokens_consumed_ns, __ATOMIC_ACQUIRE),
               __atomic_load_n(&u[k]->devices[0].launches, __ATOMIC_ACQUIRE),
               __atomic_load_n(&u[k]->devices[0].throttled_ns, __ATOMIC_ACQUIRE));
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "create") == 0) return cmd_create(argv[2], argc - 3, argv + 3);
    if (argc == 3 && strcmp(argv[1], "show") == 0) return cmd_show(argv[2]);
    if (argc == 5 && strcmp(argv[1], "set-limit") == 0) return cmd_set_limit(argv[2], argv[3], argv[4]);
    if (argc == 6 && strcmp(argv[1], "set-compute") == 0) return cmd_set_compute(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 5 && strcmp(argv[1], "grant") == 0) return cmd_grant(argv[2], argv[3], argv[4]);
    if (argc >= 6 && strcmp(argv[1], "agent") == 0) return cmd_agent(argc - 2, argv + 2);
    return usage("unknown command or wrong number of arguments");
}
