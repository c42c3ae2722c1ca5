package io.omai.harness.shim;

import static io.omai.harness.shim.ShimFixture.MiB;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.harness.sim.SimNode;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The two lookup routes into the driver: dlsym on a dlopen'ed libcuda, and cuGetProcAddress_v2 (how cudart >= 11.3
 * finds every entry point). Both must hand out the wrapper for exactly the variant the driver chose, and the quota
 * must hold through them.
 */
class LookupRoutesTest {
    private static final long LIMIT = 64 * MiB;

    @TempDir
    Path tmp;

    @Test
    void aCudartStyleLoaderIsHeldToTheQuota() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            SimNode.Run run = f.run("omai-cudart-loader", "alloc", Long.toString(LIMIT), "counters",
                    "alloc", "1", "counters", "meminfo", "free", "alloc", Long.toString(LIMIT + 1), "counters");

            assertThat(run.all("alloc")).as(run.stdout() + run.stderr()).extracting(SimNode.Result::status)
                    .containsExactly("CUDA_SUCCESS", "CUDA_ERROR_OUT_OF_MEMORY", "CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(run.all("counters")).extracting(r -> r.getLong("alloc_calls"))
                    .as("only the allowed allocation reached the driver").containsExactly(1L, 1L, 1L);
            assertThat(run.first("meminfo").getLong("total")).isEqualTo(LIMIT);
            assertThat(run.first("meminfo").getLong("free")).isZero();
        }
    }

    @Test
    void cuGetProcAddressReturnsTheWrapperOfTheVariantTheDriverChose() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            SimNode.Run legacy = f.run("omai-cudart-loader", "resolve", "cuMemAllocAsync", "resolve", "cuMemGetInfo",
                    "resolve", "cuGetProcAddress", "resolve", "cuInit");
            SimNode.Run perThread = f.run("omai-cudart-loader", "--per-thread", "resolve", "cuMemAllocAsync",
                    "resolve", "cuMemFreeAsync", "resolve", "cuMemAlloc");

            assertThat(legacy.all("resolve")).as(legacy.stdout() + legacy.stderr())
                    .extracting(r -> r.get("name") + "->" + r.get("symbol") + "/" + r.get("status"))
                    .containsExactly("cuMemAllocAsync->cuMemAllocAsync/0", "cuMemGetInfo->cuMemGetInfo_v2/0",
                            "cuGetProcAddress->cuGetProcAddress_v2/0", "cuInit->cuInit/0");
            assertThat(perThread.all("resolve"))
                    .extracting(r -> r.get("name") + "->" + r.get("symbol"))
                    .containsExactly("cuMemAllocAsync->cuMemAllocAsync_ptsz", "cuMemFreeAsync->cuMemFreeAsync_ptsz",
                            "cuMemAlloc->cuMemAlloc_v2");
        }
    }

    @Test
    void dlsymOnTheDriverHandleIsMappedByPointerIdentity() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            SimNode.Run names = f.run("omai-shim-dlsym-probe", "cuMemAlloc_v2", "cuMemFree_v2", "cuGetProcAddress_v2",
                    "cuMemGetInfo_v2", "cuInit", "cuCtxGetDevice");
            SimNode.Run allocs = f.run("omai-shim-dlsym-probe", "--alloc", Long.toString(LIMIT), "1");
            SimNode.Run without = f.runWith(java.util.Map.of(), "omai-shim-dlsym-probe", "cuMemAlloc_v2");

            assertThat(names.all("dlsym")).as(names.stdout() + names.stderr())
                    .extracting(r -> r.get("name") + "@" + r.get("lib"))
                    .containsExactly("cuMemAlloc_v2@libomai-shim.so", "cuMemFree_v2@libomai-shim.so",
                            "cuGetProcAddress_v2@libomai-shim.so", "cuMemGetInfo_v2@libomai-shim.so",
                            "cuInit@libcuda.so.1", "cuCtxGetDevice@libcuda.so.1");
            assertThat(allocs.all("alloc")).extracting(SimNode.Result::status).containsExactly("0", "2");
            assertThat(without.first("dlsym").get("lib")).as("without the shim: the driver itself")
                    .isEqualTo("libcuda.so.1");
        }
    }
}
