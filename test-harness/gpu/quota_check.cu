// quota_check: a CUDA runtime program (cudart finds the driver through dlopen +
// cuGetProcAddress) run under the OMAI shim by real-gpu-check.sh. Prints one
// `result` line per check; exit 0 only if every check passed.
//
//   quota_check LIMIT_BYTES
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime.h>

static int failures = 0;

static void check(bool ok, const char *what, const char *detail) {
    std::printf("result check=%s status=%s %s\n", what, ok ? "PASS" : "FAIL", detail);
    if (!ok) failures++;
}

// Allocates chunk-sized blocks with alloc until it fails; returns how many, frees them with release.
template <typename Alloc, typename Free>
static size_t fill(size_t chunk, Alloc alloc, Free release, cudaError_t *last) {
    std::vector<void *> held;
    for (;;) {
        void *p = nullptr;
        cudaError_t e = alloc(&p, chunk);
        if (e != cudaSuccess) {
            *last = e;
            cudaGetLastError(); // clear the sticky-free error state of the runtime
            break;
        }
        held.push_back(p);
        if (held.size() > 100000) break;
    }
    for (void *p : held) release(p);
    return held.size();
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: quota_check LIMIT_BYTES\n");
        return 2;
    }
    const size_t limit = std::strtoull(argv[1], nullptr, 10);
    const size_t chunk = 64ull << 20;
    char detail[256];

    size_t free_b = 0, total_b = 0;
    cudaError_t e = cudaMemGetInfo(&free_b, &total_b);
    std::snprintf(detail, sizeof detail, "err=%s free=%zu total=%zu limit=%zu", cudaGetErrorName(e), free_b,
                  total_b, limit);
    check(e == cudaSuccess && total_b == limit && free_b <= limit, "cudaMemGetInfo-shows-quota", detail);

    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, 0);
    std::snprintf(detail, sizeof detail, "err=%s totalGlobalMem=%zu", cudaGetErrorName(e), prop.totalGlobalMem);
    check(e == cudaSuccess && prop.totalGlobalMem == limit, "cudaGetDeviceProperties-shows-quota", detail);

    cudaError_t last = cudaSuccess;
    size_t n = fill(chunk, [](void **p, size_t s) { return cudaMalloc(p, s); }, [](void *p) { cudaFree(p); }, &last);
    std::snprintf(detail, sizeof detail, "chunks=%zu bytes=%zu last=%s", n, n * chunk, cudaGetErrorName(last));
    check(last == cudaErrorMemoryAllocation && n * chunk <= limit && n * chunk + chunk > limit - (256ull << 20),
          "cudaMalloc-stops-at-quota", detail);

    cudaStream_t s;
    cudaStreamCreate(&s);
    n = fill(chunk, [s](void **p, size_t sz) { return cudaMallocAsync(p, sz, s); },
             [s](void *p) { cudaFreeAsync(p, s); }, &last);
    cudaStreamSynchronize(s);
    std::snprintf(detail, sizeof detail, "chunks=%zu bytes=%zu last=%s", n, n * chunk, cudaGetErrorName(last));
    check(last == cudaErrorMemoryAllocation && n * chunk <= limit, "cudaMallocAsync-stops-at-quota", detail);

    n = fill(chunk, [](void **p, size_t sz) { return cudaMallocManaged(p, sz); }, [](void *p) { cudaFree(p); },
             &last);
    std::snprintf(detail, sizeof detail, "chunks=%zu bytes=%zu last=%s", n, n * chunk, cudaGetErrorName(last));
    check(last == cudaErrorMemoryAllocation && n * chunk <= limit, "cudaMallocManaged-stops-at-quota", detail);

    void *p = nullptr;
    e = cudaMalloc(&p, limit + 1);
    std::snprintf(detail, sizeof detail, "err=%s", cudaGetErrorName(e));
    check(e == cudaErrorMemoryAllocation, "cudaMalloc-limit-plus-one-refused", detail);
    cudaGetLastError();
    e = cudaMalloc(&p, limit / 2);
    std::snprintf(detail, sizeof detail, "err=%s", cudaGetErrorName(e));
    check(e == cudaSuccess, "cudaMalloc-after-frees", detail);
    cudaFree(p);

    std::printf("result check=summary failures=%d\n", failures);
    return failures ? 1 : 0;
}
