/*
 * shim_lookup.c - the two lookup routes into the driver: dlsym and
 * cuGetProcAddress(_v2) (how cudart >= 11.3 finds every entry point).
 *
 * Both ask the real lookup first, with the caller's arguments, and then decide
 * by POINTER IDENTITY: if the driver handed out the real address of an entry
 * point we wrap, the caller gets our wrapper for exactly that ABI variant
 * (_v2, _ptsz, ...). Names never decide which variant the caller meant - the
 * driver already did, from cudaVersion and flags. Everything else, and
 * symbolStatus, passes through untouched.
 *
 * Fail-closed: if a lookup under the name (or unversioned family name) of a
 * wrapped entry point yields an address we do not know - a driver variant
 * newer than this shim, or a second copy of libcuda - it is refused rather
 * than handed out unaccounted.
 */
#include <string.h>

#include "shim.h"

static void refuse_once(const char *route, const char *symbol) {
    static int said;
    if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED)) {
        omai_log("%s(\"%s\") returned an entry point this shim does not know (a newer driver variant "
                 "or another libcuda); refused so it cannot bypass the memory quota",
                 route, symbol);
    }
}

/* Never inlined into dlsym's fast path: keeps that path a plain tail call. */
__attribute__((noinline)) static void *vet_dlsym(void *handle, const char *symbol) {
    void *p = omai_real_dlsym(handle, symbol);
    if (!p || omai_resolving_here) {
        return p;
    }
    if (symbol[0] == 'c') {
        /* If p came from libcuda, libcuda is loaded: resolve our table now. */
        if (__atomic_load_n(&omai_cuda_state, __ATOMIC_ACQUIRE) != 2) {
            omai_cuda_resolve_slow(false);
        }
        void *w = omai_wrap_cuda_pointer(p);
        if (w != p || omai_is_cuda_wrapper(p) || !omai_is_guarded_name(symbol)) {
            return w;
        }
        if ((w = omai_wrap_cuda_by_name(p)) != NULL) {
            return w;
        }
        refuse_once("dlsym", symbol);
        return NULL;
    }
    return omai_wrap_nvml_pointer(p);
}

/* The pass-through below must compile to a jump, whatever -O the build uses
 * (make check: shim-rtld-next fails otherwise). */
__attribute__((optimize("O2", "optimize-sibling-calls"))) void *dlsym(void *handle, const char *symbol) {
    if (OMAI_UNLIKELY(!omai_real_dlsym)) {
        omai_resolve_real_dlsym(); /* called before our constructor ran */
        if (!omai_real_dlsym) {
            return NULL;
        }
    }
    if ((symbol[0] == 'c' && symbol[1] == 'u') ||
        (symbol[0] == 'n' && symbol[1] == 'v' && symbol[2] == 'm' && symbol[3] == 'l')) {
        return vet_dlsym(handle, symbol);
    }
    /* Everything else: a tail call, so the real dlsym sees the CALLER's return
     * address and RTLD_NEXT keeps meaning "after the caller" (tests/rtld_next). */
    return omai_real_dlsym(handle, symbol);
}

/* Post-processes what the real cuGetProcAddress(_v2) returned. */
static CUresult vet_proc_address(CUresult r, const char *symbol, void **pfn,
                                 CUdriverProcAddressQueryResult *status) {
    if (r != CUDA_SUCCESS || !pfn || !*pfn) {
        return r;
    }
    void *w = omai_wrap_cuda_pointer(*pfn);
    /* A driver whose own table binds through the global scope hands out our
     * exported wrapper directly: that is fine too. */
    if (w != *pfn || omai_is_cuda_wrapper(w) || !symbol || !omai_is_guarded_name(symbol)) {
        *pfn = w;
        return r;
    }
    if ((w = omai_wrap_cuda_by_name(*pfn)) != NULL) {
        *pfn = w;
        return r;
    }
    refuse_once("cuGetProcAddress", symbol);
    *pfn = NULL;
    if (status) {
        *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    }
    return CUDA_ERROR_NOT_FOUND;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
    if (!omai_cuda_ready() || !omai_cu.cuGetProcAddress) {
        return CUDA_ERROR_NOT_FOUND;
    }
    CUresult r = omai_cu.cuGetProcAddress(symbol, pfn, cudaVersion, flags);
    return vet_proc_address(r, symbol, pfn, NULL);
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *symbolStatus) {
    if (!omai_cuda_ready() || !omai_cu.cuGetProcAddress_v2) {
        return CUDA_ERROR_NOT_FOUND;
    }
    CUresult r = omai_cu.cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, symbolStatus);
    return vet_proc_address(r, symbol, pfn, symbolStatus);
}
