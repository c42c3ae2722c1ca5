/*
 * omai-shim-race: PROCS processes of one container race for one quota, REPS
 * times. Run under the shim (LD_PRELOAD) with the allocation files named by
 * OMAI_CONTROL_FILE / OMAI_USAGE_FILE and the simulated driver.
 *
 *   omai-shim-race PROCS REPS CHUNK_BYTES LIMIT_BYTES [THREADS]
 *
 * Each rep forks PROCS children. Each child initialises CUDA, then THREADS
 * threads (default 1) each allocate CHUNK_BYTES with cuMemAlloc_v2 until their
 * first refusal; the child reports how many it got, holds them until every
 * child has reported (so all allocations are live at once), frees them from
 * all its threads at once, and exits. The parent checks, every rep, that together they
 * got exactly LIMIT/CHUNK chunks: never more (the quota held under the race)
 * and never fewer (no spurious refusal). Prints one `result` line per failure
 * and a summary; exit 0 only if every rep was exact.
 */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "omai_cuda.h"

#define MAX_PROCS 32
#define MAX_CHUNKS 4096
#define MAX_THREADS 16

typedef struct worker {
    CUcontext ctx;
    uint64_t chunk;
    int32_t got;
    CUresult last;
    CUdeviceptr held[MAX_CHUNKS];
} worker;

static void *grab(void *arg) {
    worker *w = arg;
    w->last = cuCtxSetCurrent(w->ctx);
    while (w->last == CUDA_SUCCESS && w->got < MAX_CHUNKS) {
        w->last = cuMemAlloc_v2(&w->held[w->got], (size_t)w->chunk);
        if (w->last == CUDA_SUCCESS) w->got++;
    }
    return NULL;
}

static void *release(void *arg) {
    worker *w = arg;
    cuCtxSetCurrent(w->ctx);
    for (int32_t i = 0; i < w->got; i++) {
        if (cuMemFree_v2(w->held[i]) != CUDA_SUCCESS) w->last = CUDA_ERROR_UNKNOWN;
    }
    return NULL;
}

static int child(uint64_t chunk, int threads, int report_fd, int hold_fd) {
    CUdevice dev;
    CUcontext ctx = NULL;
    CUresult rc = cuInit(0);
    if (rc == CUDA_SUCCESS) rc = cuDeviceGet(&dev, 0);
    if (rc == CUDA_SUCCESS) rc = cuDevicePrimaryCtxRetain(&ctx, dev);
    static worker workers[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int32_t got = 0;
    int bad = rc != CUDA_SUCCESS;
    for (int t = 0; t < threads && !bad; t++) {
        workers[t] = (worker){.ctx = ctx, .chunk = chunk};
        if (pthread_create(&tids[t], NULL, grab, &workers[t]) != 0) bad = 1, threads = t;
    }
    for (int t = 0; t < threads && rc == CUDA_SUCCESS; t++) {
        pthread_join(tids[t], NULL);
        got += workers[t].got;
        /* Refused by anything but the quota? */
        if (workers[t].last != CUDA_ERROR_OUT_OF_MEMORY) bad = 1, rc = workers[t].last;
    }
    int32_t report = bad ? -(int32_t)(rc ? rc : CUDA_ERROR_UNKNOWN) : got;
    if (write(report_fd, &report, sizeof report) != (ssize_t)sizeof report) return 3;
    char go;
    if (read(hold_fd, &go, 1) != 1) return 4; /* hold until the parent has counted everyone */
    for (int t = 0; t < threads && rc == CUDA_SUCCESS; t++) pthread_create(&tids[t], NULL, release, &workers[t]);
    for (int t = 0; t < threads && rc == CUDA_SUCCESS; t++) {
        pthread_join(tids[t], NULL);
        if (workers[t].last == CUDA_ERROR_UNKNOWN) return 5; /* a free failed */
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: omai-shim-race PROCS REPS CHUNK_BYTES LIMIT_BYTES [THREADS]\n");
        return 2;
    }
    int procs = atoi(argv[1]), reps = atoi(argv[2]), threads = argc == 6 ? atoi(argv[5]) : 1;
    uint64_t chunk = strtoull(argv[3], NULL, 10), limit = strtoull(argv[4], NULL, 10);
    if (procs < 1 || procs > MAX_PROCS || reps < 1 || chunk == 0 || limit / chunk > MAX_CHUNKS || threads < 1 ||
        threads > MAX_THREADS) {
        fprintf(stderr, "omai-shim-race: PROCS must be 1..%d, REPS >= 1, CHUNK > 0, LIMIT/CHUNK <= %d and "
                        "THREADS 1..%d\n", MAX_PROCS, MAX_CHUNKS, MAX_THREADS);
        return 2;
    }
    int64_t expected = (int64_t)(limit / chunk);
    int bad = 0;
    int64_t min_seen = INT64_MAX, max_seen = 0;
    for (int rep = 0; rep < reps; rep++) {
        int report[2], hold[2];
        if (pipe(report) != 0 || pipe(hold) != 0) {
            perror("omai-shim-race: pipe");
            return 1;
        }
        pid_t pids[MAX_PROCS];
        for (int p = 0; p < procs; p++) {
            fflush(stdout);
            pids[p] = fork();
            if (pids[p] < 0) {
                perror("omai-shim-race: fork");
                return 1;
            }
            if (pids[p] == 0) {
                close(report[0]);
                close(hold[1]);
                /* exit, not _exit: a normal end runs the shim's destructor,
                 * which frees the slot (a killed process is the agent's job). */
                exit(child(chunk, threads, report[1], hold[0]) == 0 ? 0 : 1);
            }
        }
        close(report[1]);
        close(hold[0]);
        int64_t total = 0;
        int failed_child = 0;
        for (int p = 0; p < procs; p++) {
            int32_t got;
            if (read(report[0], &got, sizeof got) != (ssize_t)sizeof got) {
                failed_child = 1;
                break;
            }
            if (got < 0) {
                printf("result op=race rep=%d problem=child-error cuda_status=%d\n", rep, -got);
                failed_child = 1;
            } else {
                total += got;
            }
        }
        /* Everyone has reported while holding: release them all. */
        for (int p = 0; p < procs; p++) {
            if (write(hold[1], "g", 1) != 1) failed_child = 1;
        }
        close(hold[1]);
        close(report[0]);
        for (int p = 0; p < procs; p++) {
            int st;
            if (waitpid(pids[p], &st, 0) != pids[p] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) failed_child = 1;
        }
        if (total < min_seen) min_seen = total;
        if (total > max_seen) max_seen = total;
        if (failed_child || total != expected) {
            printf("result op=race rep=%d chunks=%" PRId64 " expected=%" PRId64 " child_failed=%d status=FAILED\n",
                   rep, total, expected, failed_child);
            bad++;
        }
    }
    printf("result op=race-summary procs=%d threads=%d reps=%d expected_chunks=%" PRId64 " min_chunks=%" PRId64
           " max_chunks=%" PRId64 " bad_reps=%d status=%s\n",
           procs, threads, reps, expected, min_seen, max_seen, bad, bad ? "FAILED" : "OK");
    return bad ? 1 : 0;
}
