/* Small helpers shared by the workload programs (header-only: each program is
 * one translation unit). Output is one `result op=... key=value ...` line per
 * operation, flushed at once so a test can react while the program runs. */
#ifndef OMAI_WORKLOAD_UTIL_H
#define OMAI_WORKLOAD_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));

static void emit(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("result ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

__attribute__((unused)) static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((unused)) static void sleep_until_ns(uint64_t t) {
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* "1048576", "64MiB", "2GiB": 0 on success. */
__attribute__((unused)) static int parse_size(const char *text, uint64_t *out) {
    static const struct { const char *suffix; uint64_t mult; } units[] = {
        {"", 1}, {"B", 1}, {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
    };
    if (text[0] < '0' || text[0] > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0 && v <= UINT64_MAX / units[i].mult) {
            *out = v * units[i].mult;
            return 0;
        }
    }
    return -1;
}

/* A non-negative decimal number (e.g. seconds "1.5"): 0 on success. */
__attribute__((unused)) static int parse_number(const char *text, double lo, double hi, double *out) {
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

#endif /* OMAI_WORKLOAD_UTIL_H */
