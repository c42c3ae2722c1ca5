package io.omai.harness.shim;

import static io.omai.harness.shim.ShimFixture.MiB;
import static org.assertj.core.api.Assertions.assertThat;

import io.omai.simulator.sim.SimNode;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
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
            SimNode.Run run = f.run(
                    "omai-cudart-loader",
                    "alloc",
                    Long.toString(LIMIT),
                    "counters",
                    "alloc",
                    "1",
                    "counters",
                    "meminfo",
                    "free",
                    "alloc",
                    Long.toString(LIMIT + 1),
                    "counters");

            assertThat(run.all("alloc"))
                    .as(run.stdout() + run.stderr())
                    .extracting(SimNode.Result::status)
                    .containsExactly("CUDA_SUCCESS", "CUDA_ERROR_OUT_OF_MEMORY", "CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(run.all("counters"))
                    .extracting(r -> r.getLong("alloc_calls"))
                    .as("only the allowed allocation reached the driver")
                    .containsExactly(1L, 1L, 1L);
            assertThat(run.first("meminfo").getLong("total")).isEqualTo(LIMIT);
            assertThat(run.first("meminfo").getLong("free")).isZero();
        }
    }

    @Test
    void cuGetProcAddressReturnsTheWrapperOfTheVariantTheDriverChose() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            SimNode.Run legacy = f.run(
                    "omai-cudart-loader",
                    "resolve",
                    "cuMemAllocAsync",
                    "resolve",
                    "cuMemGetInfo",
                    "resolve",
                    "cuGetProcAddress",
                    "resolve",
                    "cuInit");
            SimNode.Run perThread = f.run(
                    "omai-cudart-loader",
                    "--per-thread",
                    "resolve",
                    "cuMemAllocAsync",
                    "resolve",
                    "cuMemFreeAsync",
                    "resolve",
                    "cuMemAlloc");

            assertThat(legacy.all("resolve"))
                    .as(legacy.stdout() + legacy.stderr())
                    .extracting(r -> r.get("name") + "->" + r.get("symbol") + "/" + r.get("status"))
                    .containsExactly(
                            "cuMemAllocAsync->cuMemAllocAsync/0",
                            "cuMemGetInfo->cuMemGetInfo_v2/0",
                            "cuGetProcAddress->cuGetProcAddress_v2/0",
                            "cuInit->cuInit/0");
            assertThat(perThread.all("resolve"))
                    .extracting(r -> r.get("name") + "->" + r.get("symbol"))
                    .containsExactly(
                            "cuMemAllocAsync->cuMemAllocAsync_ptsz",
                            "cuMemFreeAsync->cuMemFreeAsync_ptsz",
                            "cuMemAlloc->cuMemAlloc_v2");
        }
    }

    /**
     * NVIDIA's libcuda binds its own symbols internally, so its cuGetProcAddress hands out the driver's own
     * addresses; the simulator built the same way (-Bsymbolic, native/build/symsim) makes the shim's
     * pointer-identity mapping, not the dynamic linker's interposition, decide what the caller gets.
     */
    @Test
    void cuGetProcAddressIsMappedByPointerIdentityOnADriverLinkedLikeNvidias() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            Map<String, String> env = new HashMap<>(f.shimEnv());
            env.put(
                    "LD_LIBRARY_PATH",
                    SimNode.nativeBuildDir().resolve("symsim").toString());
            Map<String, String> plain = Map.of("LD_LIBRARY_PATH", env.get("LD_LIBRARY_PATH"));
            String[] names = {"cuMemAllocAsync", "cuMemFreeAsync", "cuMemAlloc", "cuGetProcAddress", "cuInit"};

            SimNode.Run legacy = f.runWith(env, "omai-shim-dlsym-probe", concat("--getproc", "12080", "0", names));
            SimNode.Run perThread = f.runWith(env, "omai-shim-dlsym-probe", concat("--getproc", "12080", "2", names));
            SimNode.Run driverOnly =
                    f.runWith(plain, "omai-shim-dlsym-probe", concat("--getproc", "12080", "2", names));
            SimNode.Run loader =
                    f.runWith(env, "omai-cudart-loader", "alloc", Long.toString(LIMIT), "alloc", "1", "counters");

            assertThat(legacy.all("getproc"))
                    .as(legacy.stdout() + legacy.stderr())
                    .extracting(r -> r.get("name") + "->" + r.get("symbol") + "@" + r.get("lib"))
                    .containsExactly(
                            "cuMemAllocAsync->cuMemAllocAsync@libomai-shim.so",
                            "cuMemFreeAsync->cuMemFreeAsync@libomai-shim.so",
                            "cuMemAlloc->cuMemAlloc_v2@libomai-shim.so",
                            "cuGetProcAddress->cuGetProcAddress_v2@libomai-shim.so",
                            "cuInit->cuInit@libcuda.so.1");
            assertThat(perThread.all("getproc"))
                    .extracting(r -> r.get("name") + "->" + r.get("symbol") + "@" + r.get("lib"))
                    .startsWith(
                            "cuMemAllocAsync->cuMemAllocAsync_ptsz@libomai-shim.so",
                            "cuMemFreeAsync->cuMemFreeAsync_ptsz@libomai-shim.so");
            assertThat(driverOnly.all("getproc"))
                    .as("without the shim the driver hands out its own")
                    .extracting(r -> r.get("lib"))
                    .containsOnly("libcuda.so.1");
            assertThat(loader.all("alloc"))
                    .as(loader.stdout() + loader.stderr())
                    .extracting(SimNode.Result::status)
                    .containsExactly("CUDA_SUCCESS", "CUDA_ERROR_OUT_OF_MEMORY");
            assertThat(loader.first("counters").getLong("alloc_calls")).isEqualTo(1);
        }
    }

    private static String[] concat(String a, String b, String c, String... rest) {
        String[] all = new String[3 + rest.length];
        all[0] = a;
        all[1] = b;
        all[2] = c;
        System.arraycopy(rest, 0, all, 3, rest.length);
        return all;
    }

    @Test
    void dlsymOnTheDriverHandleIsMappedByPointerIdentity() {
        try (ShimFixture f = ShimFixture.create(tmp, 1, LIMIT)) {
            SimNode.Run names = f.run(
                    "omai-shim-dlsym-probe",
                    "cuMemAlloc_v2",
                    "cuMemFree_v2",
                    "cuGetProcAddress_v2",
                    "cuMemGetInfo_v2",
                    "cuInit",
                    "cuCtxGetDevice");
            SimNode.Run allocs = f.run("omai-shim-dlsym-probe", "--alloc", Long.toString(LIMIT), "1");
            SimNode.Run without = f.runWith(Map.of(), "omai-shim-dlsym-probe", "cuMemAlloc_v2");

            assertThat(names.all("dlsym"))
                    .as(names.stdout() + names.stderr())
                    .extracting(r -> r.get("name") + "@" + r.get("lib"))
                    .containsExactly(
                            "cuMemAlloc_v2@libomai-shim.so",
                            "cuMemFree_v2@libomai-shim.so",
                            "cuGetProcAddress_v2@libomai-shim.so",
                            "cuMemGetInfo_v2@libomai-shim.so",
                            "cuInit@libcuda.so.1",
                            "cuCtxGetDevice@libcuda.so.1");
            assertThat(allocs.all("alloc")).extracting(SimNode.Result::status).containsExactly("0", "2");
            assertThat(without.first("dlsym").get("lib"))
                    .as("without the shim: the driver itself")
                    .isEqualTo("libcuda.so.1");
        }
    }
}
