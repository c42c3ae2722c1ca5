/*
 * omai-shm-tool: create, inspect and change OMAI allocation files without the
 * Java agent (real-GPU checks, debugging a node). Same layout and creation
 * protocol as the agent's AllocationFiles.create: every field written, the
 * magic last, then an atomic rename into place.
 *
 *   omai-shm-tool create DIR UUID=LIMIT [UUID=LIMIT...]   LIMIT: bytes, 4GiB, 512MiB, "unlimited"
 *   omai-shm-tool show DIR
 *   omai-shm-tool set-limit DIR INDEX LIMIT              seqlocked update of one device's limit
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
        printf(" reserved=%" PRIu64 " peak=%" PRIu64 " denied=%" PRIu64 "\n",
               __atomic_load_n(&t->bytes_reserved, __ATOMIC_ACQUIRE), __atomic_load_n(&t->bytes_peak, __ATOMIC_ACQUIRE),
               __atomic_load_n(&t->denied_allocs, __ATOMIC_ACQUIRE));
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

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "create") == 0) return cmd_create(argv[2], argc - 3, argv + 3);
    if (argc == 3 && strcmp(argv[1], "show") == 0) return cmd_show(argv[2]);
    if (argc == 5 && strcmp(argv[1], "set-limit") == 0) return cmd_set_limit(argv[2], argv[3], argv[4]);
    return usage("unknown command or wrong number of arguments");
}
