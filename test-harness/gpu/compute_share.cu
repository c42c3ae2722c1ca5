// compute_share: a saturating CUDA workload for the real-GPU compute-quota check
// (real-gpu-check.sh). Every kernel does the same fixed amount of arithmetic on
// the whole GPU, so a process's kernel rate divided by its rate alone on the GPU
// is the share of the GPU it achieved.
//
//   compute_share calibrate TARGET_US   picks ITERS so one kernel takes about TARGET_US alone;
//                                       prints "result op=calibrate iters= kernel_ns= rate="
//   compute_share run SECONDS ITERS     launches kernels for SECONDS (4 in flight at most);
//                                       prints "result op=run kernels= seconds= rate= status="
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

__global__ void work(float *out, unsigned iters) {
    float a = threadIdx.x * 1e-3f, b = blockIdx.x * 1e-3f;
    for (unsigned i = 0; i < iters; i++) {
        a = fmaf(a, 0.999f, b);
        b = fmaf(b, 0.999f, a);
    }
    if (a == 12345.0f) out[0] = b;  // never true; keeps the loop from being optimised away
}

static int blocks() {
    int dev = 0, sms = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    return sms * 4;
}

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static int check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        printf("result op=%s status=FAIL error=%s\n", what, cudaGetErrorName(e));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: compute_share calibrate TARGET_US | run SECONDS ITERS\n");
        return 2;
    }
    float *out = nullptr;
    if (check(cudaMalloc(&out, sizeof(float)), "cudaMalloc")) return 1;
    int grid = blocks();
    if (strcmp(argv[1], "calibrate") == 0) {
        double target = atof(argv[2]) * 1e-6;
        unsigned iters = 1024;
        cudaEvent_t start, stop;
        cudaEventCreate(&start);
        cudaEventCreate(&stop);
        float ms = 0;
        for (int round = 0; round < 24; round++) {
            cudaEventRecord(start);
            work<<<grid, 256>>>(out, iters);
            cudaEventRecord(stop);
            if (check(cudaEventSynchronize(stop), "calibrate")) return 1;
            cudaEventElapsedTime(&ms, start, stop);
            if (ms * 1e-3 >= target) break;
            iters *= 2;
        }
        // The rate alone, over one second of back-to-back kernels.
        double t0 = now_s();
        long kernels = 0;
        while (now_s() - t0 < 1.0) {
            work<<<grid, 256>>>(out, iters);
            if (++kernels % 4 == 0 && check(cudaDeviceSynchronize(), "calibrate")) return 1;
        }
        if (check(cudaDeviceSynchronize(), "calibrate")) return 1;
        double rate = kernels / (now_s() - t0);
        printf("result op=calibrate iters=%u kernel_ns=%.0f rate=%.2f status=PASS\n", iters, 1e9 / rate, rate);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0 && argc == 4) {
        double seconds = atof(argv[2]);
        unsigned iters = (unsigned)strtoul(argv[3], nullptr, 10);
        double t0 = now_s();
        long kernels = 0;
        while (now_s() - t0 < seconds) {
            if (check(cudaGetLastError(), "launch")) return 1;
            work<<<grid, 256>>>(out, iters);
            // At most 4 kernels in flight: the shim throttles launches, and a deep queue would hide that.
            if (++kernels % 4 == 0 && check(cudaDeviceSynchronize(), "run")) return 1;
        }
        if (check(cudaDeviceSynchronize(), "run")) return 1;
        double elapsed = now_s() - t0;
        printf("result op=run kernels=%ld seconds=%.3f rate=%.2f status=PASS\n", kernels, elapsed, kernels / elapsed);
        return 0;
    }
    fprintf(stderr, "usage: compute_share calibrate TARGET_US | run SECONDS ITERS\n");
    return 2;
}
