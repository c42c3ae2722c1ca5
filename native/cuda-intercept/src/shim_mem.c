/*
 * shim_mem.c - device memory under the quota: every allocation route of the
 * driver API, the frees that give it back, and the memory views.
 *
 * Allocation: reserve (never beyond the limit) -> driver -> commit, or undo if
 * the driver failed. A breach returns CUDA_ERROR_OUT_OF_MEMORY without
 * reaching the driver. Free: forget the entry -> driver -> give the bytes back
 * (or remember it again if the driver refused the free).
 *
 * Device: the current context's device (cuMemAlloc*, managed, arrays, pool
 * allocations), the stream's device where the driver can say
 * (cuMemAllocAsync), the location in the properties (cuMemCreate).
 */
#include "shim.h"

#define NEED_REAL(fn)                                  \
    do {                                               \
        if (OMAI_UNLIKELY(!omai_cuda_ready() || !omai_cu.fn)) { \
            return CUDA_ERROR_NOT_FOUND;               \
        }                                              \
    } while (0)

/* Devices the driver shows this process; 0 until known (needs cuInit). */
static int visible_devices;

/* The current context's device. With one visible GPU - the usual container -
 * that is device 0 without asking the driver; if there is no current context
 * the allocation itself then fails in the driver and the charge is undone. */
OMAI_ALWAYS_INLINE static inline CUresult context_device(CUdevice *dev) {
    int n = __atomic_load_n(&visible_devices, __ATOMIC_RELAXED);
    if (OMAI_LIKELY(n == 1)) {
        *dev = 0;
        return CUDA_SUCCESS;
    }
    if (n == 0 && omai_cu.cuDeviceGetCount && omai_cu.cuDeviceGetCount(&n) == CUDA_SUCCESS && n > 0) {
        __atomic_store_n(&visible_devices, n, __ATOMIC_RELAXED);
        if (n == 1) {
            *dev = 0;
            return CUDA_SUCCESS;
        }
    }
    if (OMAI_UNLIKELY(!omai_cu.cuCtxGetDevice)) {
        return CUDA_ERROR_NOT_FOUND;
    }
    return omai_cu.cuCtxGetDevice(dev);
}

static CUresult stream_device(CUstream stream, CUdevice *dev) {
    if (omai_cu.cuStreamGetDevice && omai_cu.cuStreamGetDevice(stream, dev) == CUDA_SUCCESS) {
        return CUDA_SUCCESS;
    }
    return context_device(dev);
}

/* After the driver's answer to an allocation: commit or undo. */
OMAI_ALWAYS_INLINE static inline CUresult settle(CUresult r, const omai_charge *c, int kind, uint64_t key) {
    if (OMAI_LIKELY(r == CUDA_SUCCESS)) {
        omai_charge_commit(c, kind, key);
    } else {
        omai_charge_cancel(c);
    }
    return r;
}

/* After the driver's answer to a free of an entry we took out of the table. */
static CUresult after_free(CUresult r, bool had, int kind, uint64_t key, int dev, uint64_t bytes) {
    if (!had) {
        return r;
    }
    if (OMAI_LIKELY(r == CUDA_SUCCESS)) {
        omai_release(dev, bytes);
    } else {
        omai_ptrtab_insert(kind, key, dev, bytes); /* still allocated: remember it again */
    }
    return r;
}

/* ------------------------------------------------------ linear allocations */

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
    NEED_REAL(cuMemAlloc_v2);
    if (!dptr || bytesize == 0) {
        return omai_cu.cuMemAlloc_v2(dptr, bytesize); /* the driver's own error, nothing allocated */
    }
    CUdevice dev;
    CUresult r = context_device(&dev);
    if (r != CUDA_SUCCESS) {
        return r;
    }
    omai_charge c;
    if ((r = omai_charge_begin(dev, bytesize, &c)) != CUDA_SUCCESS) {
        return r;
    }
    r = omai_cu.cuMemAlloc_v2(dptr, bytesize);
    return settle(r, &c, OMAI_KIND_DEVPTR, r == CUDA_SUCCESS ? *dptr : 0);
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags) {
    NEED_REAL(cuMemAllocManaged);
    if (!dptr || bytesize == 0) {
        return omai_cu.cuMemAllocManaged(dptr, bytesize, flags);
    }
    CUdevice dev;
    CUresult r = context_device(&dev);
    if (r != CUDA_SUCCESS) {
        return r;
    }
    omai_charge c;
    if ((r = omai_charge_begin(dev, bytesize, &c)) != CUDA_SUCCESS) {
        return r;
    }
    r = omai_cu.cuMemAllocManaged(dptr, bytesize, flags);
    return settle(r, &c, OMAI_KIND_DEVPTR, r == CUDA_SUCCESS ? *dptr : 0);
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                            unsigned int ElementSizeBytes) {
    NEED_REAL(cuMemAllocPitch_v2);
    if (!dptr || !pPitch || WidthInBytes == 0 || Height == 0) {
        return omai_cu.cuMemAllocPitch_v2(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    }
    CUdevice dev;
    CUresult r = context_device(&dev);
    if (r != CUDA_SUCCESS) {
        return r;
    }
    /* The pitch is the driver's choice: reserve the least it can be (width x
     * height), then settle on pitch x height once it is known. */
    uint64_t least = omai_sat_mul(WidthInBytes, Height);
    omai_charge c;
    if ((r = omai_charge_begin(dev, least, &c)) != CUDA_SUCCESS) {
        return r;
    }
    r = omai_cu.cuMemAllocPitch_v2(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    if (r != CUDA_SUCCESS) {
        omai_charge_cancel(&c);
        return r;
    }
    uint64_t actual = omai_sat_mul(*pPitch, Height);
    if (actual > least && omai_charge_grow(&c, actual - least) != CUDA_SUCCESS) {
        if (omai_cu.cuMemFree_v2) {
            omai_cu.cuMemFree_v2(*dptr);
        }
        *dptr = 0;
        omai_charge_cancel(&c);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (actual < least) {
        omai_charge_shrink(&c, least - actual);
    }
    omai_charge_commit(&c, OMAI_KIND_DEVPTR, *dptr);
    return CUDA_SUCCESS;
}

static CUresult alloc_async(__typeof__(&cuMemAllocAsync) real, CUdeviceptr *dptr, size_t bytesize,
                            CUstream hStream) {
    if (!dptr || bytesize == 0) {
        return real(dptr, bytesize, hStream);
    }
    CUdevice dev;
    CUresult r = stream_device(hStream, &dev);
    if (r != CUDA_SUCCESS) {
        return r;
    }
    omai_charge c;
    if ((r = omai_charge_begin(dev, bytesize, &c)) != CUDA_SUCCESS) {
        return r;
    }
    r = real(dptr, bytesize, hStream);
    return settle(r, &c, OMAI_KIND_DEVPTR, r == CUDA_SUCCESS ? *dptr : 0);
}

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
    NEED_REAL(cuMemAllocAsync);
    return alloc_async(omai_cu.cuMemAllocAsync, dptr, bytesize, hStream);
}

CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
    NEED_REAL(cuMemAllocAsync_ptsz);
    return alloc_async(omai_cu.cuMemAllocAsync_ptsz, dptr, bytesize, hStream);
}

/* ------------------------------------------------------ where pools live */

/* Memory pools seen being created or handed out, and where they live: a
 * small lock-free open-addressing table (pools are few), key = the handle. */
#define POOL_SLOTS 512u
#define POOL_EMPTY 0u
#define POOL_GONE 1u
#define POOL_HOST (-2) /* host-located pool: pinned host memory, not GPU memory */
#define POOL_UNKNOWN (-1)

static struct {
    uintptr_t key;
    int where; /* device ordinal, POOL_HOST */
} pools[POOL_SLOTS];

static uint32_t pool_home(uintptr_t k) { return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 55) % POOL_SLOTS; }

static void pool_record(CUmemoryPool pool, int where, bool keep_known) {
    uintptr_t k = (uintptr_t)pool;
    if (k <= POOL_GONE) {
        return;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        uint32_t i = pool_home(k);
        for (uint32_t n = 0; n < POOL_SLOTS; n++, i = (i + 1) % POOL_SLOTS) {
            uintptr_t cur = __atomic_load_n(&pools[i].key, __ATOMIC_ACQUIRE);
            if (cur == k) {
                if (!keep_known) {
                    __atomic_store_n(&pools[i].where, where, __ATOMIC_RELEASE);
                }
                return;
            }
            if (cur == POOL_EMPTY || (attempt == 1 && cur == POOL_GONE)) {
                /* First pass looks for the key up to the first empty entry;
                 * the second may reuse a freed one. */
                if (attempt == 0) {
                    break;
                }
                uintptr_t expected = cur;
                if (__atomic_compare_exchange_n(&pools[i].key, &expected, k, false, __ATOMIC_ACQ_REL,
                                                __ATOMIC_RELAXED)) {
                    /* After the claim: the thread that won the entry writes it. */
                    __atomic_store_n(&pools[i].where, where, __ATOMIC_RELEASE);
                    return;
                }
            }
        }
    }
    /* Full (512 live pools): the pool stays unknown and is charged to the stream's device. */
}

static int pool_where(CUmemoryPool pool) {
    uintptr_t k = (uintptr_t)pool;
    uint32_t i = pool_home(k);
    for (uint32_t n = 0; n < POOL_SLOTS && k > POOL_GONE; n++, i = (i + 1) % POOL_SLOTS) {
        uintptr_t cur = __atomic_load_n(&pools[i].key, __ATOMIC_ACQUIRE);
        if (cur == k) {
            return __atomic_load_n(&pools[i].where, __ATOMIC_ACQUIRE);
        }
        if (cur == POOL_EMPTY) {
            break;
        }
    }
    return POOL_UNKNOWN;
}

static void pool_forget(CUmemoryPool pool) {
    uintptr_t k = (uintptr_t)pool;
    uint32_t i = pool_home(k);
    for (uint32_t n = 0; n < POOL_SLOTS && k > POOL_GONE; n++, i = (i + 1) % POOL_SLOTS) {
        uintptr_t cur = __atomic_load_n(&pools[i].key, __ATOMIC_ACQUIRE);
        if (cur == k) {
            __atomic_compare_exchange_n(&pools[i].key, &cur, POOL_GONE, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED);
            return;
        }
        if (cur == POOL_EMPTY) {
            return;
        }
    }
}

static int location_where(const CUmemLocation *loc) {
    switch (loc->type) {
    case CU_MEM_LOCATION_TYPE_DEVICE:
        return loc->id;
    case CU_MEM_LOCATION_TYPE_HOST:
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
    case CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT:
        return POOL_HOST;
    default:
        return POOL_UNKNOWN;
    }
}

CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps) {
    NEED_REAL(cuMemPoolCreate);
    CUresult r = omai_cu.cuMemPoolCreate(pool, poolProps);
    if (r == CUDA_SUCCESS && pool && poolProps) {
        int where = location_where(&poolProps->location);
        if (where != POOL_UNKNOWN) {
            pool_record(*pool, where, false);
        }
    }
    return r;
}

CUresult cuMemPoolDestroy(CUmemoryPool pool) {
    NEED_REAL(cuMemPoolDestroy);
    CUresult r = omai_cu.cuMemPoolDestroy(pool);
    if (r == CUDA_SUCCESS) {
        pool_forget(pool);
    }
    return r;
}

CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out, CUdevice dev) {
    NEED_REAL(cuDeviceGetDefaultMemPool);
    CUresult r = omai_cu.cuDeviceGetDefaultMemPool(pool_out, dev);
    if (r == CUDA_SUCCESS && pool_out) {
        pool_record(*pool_out, dev, false);
    }
    return r;
}

CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev) {
    NEED_REAL(cuDeviceGetMemPool);
    CUresult r = omai_cu.cuDeviceGetMemPool(pool, dev);
    if (r == CUDA_SUCCESS && pool) {
        pool_record(*pool, dev, true); /* a pool created elsewhere keeps what its creation said */
    }
    return r;
}

static CUresult alloc_from_pool(__typeof__(&cuMemAllocFromPoolAsync) real, CUdeviceptr *dptr,
                                size_t bytesize, CUmemoryPool pool, CUstream hStream) {
    if (!dptr || bytesize == 0) {
        return real(dptr, bytesize, pool, hStream);
    }
    /* The pool's device, as its creation (or the driver, for a device's own
     * pools) said; a pool the shim never saw (imported from another process)
     * is charged to the stream's device. Host pools are not GPU memory. */
    int where = pool_where(pool);
    if (where == POOL_HOST) {
        return real(dptr, bytesize, pool, hStream);
    }
    CUdevice dev = where;
    CUresult r = where >= 0 ? CUDA_SUCCESS : stream_device(hStream, &dev);
    if (r != CUDA_SUCCESS) {
        return r;
    }
    omai_charge c;
    if ((r = omai_charge_begin(dev, bytesize, &c)) != CUDA_SUCCESS) {
        return r;
    }
    r = real(dptr, bytesize, pool, hStream);
    return settle(r, &c, OMAI_KIND_DEVPTR, r == CUDA_SUCCESS ? *dptr : 0);
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                 CUstream hStream) {
    NEED_REAL(cuMemAllocFromPoolAsync);
    return alloc_from_pool(omai_cu.cuMemAllocFromPoolAsync, dptr, bytesize, pool, hStream);
}

CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                      CUstream hStream) {
    NEED_REAL(cuMemAllocFromPoolAsync_ptsz);
    return alloc_from_pool(omai_cu.cuMemAllocFromPoolAsync_ptsz, dptr, bytesize, pool, hStream);
}

/* ------------------------------------------------------------------- VMM */

CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                     unsigned long long flags) {
    NEED_REAL(cuMemCreate);
    /* Only device-resident physical memory counts; host (NUMA) locations are not GPU memory. */
    if (!handle || !prop || size == 0 || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE) {
        return omai_cu.cuMemCreate(handle, size, prop, flags);
    }
    omai_charge c;
    CUresult r = omai_charge_begin((CUdevice)prop->location.id, size, &c);
    if (r != CUDA_SUCCESS) {
        return r;
    }
    r = omai_cu.cuMemCreate(handle, size, prop, flags);
    return settle(r, &c, OMAI_KIND_VMM, r == CUDA_SUCCESS ? *handle : 0);
}

/* ---------------------------------------------------------------- arrays */

static uint64_t format_bytes(CUarray_format f) {
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
        return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
        return 2;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT:
        return 4;
    default:
        return 8; /* a format this shim does not list: the widest channel, so over, never under */
    }
}

static uint64_t at_least_1(uint64_t v) { return v ? v : 1; }

/* Bytes of one level: width x height x depth x channels x channel size. */
static uint64_t level_bytes(uint64_t w, uint64_t h, uint64_t d, unsigned channels, CUarray_format f) {
    uint64_t b = omai_sat_mul(at_least_1(w), at_least_1(h));
    b = omai_sat_mul(b, at_least_1(d));
    b = omai_sat_mul(b, at_least_1(channels));
    return omai_sat_mul(b, format_bytes(f));
}

static CUresult alloc_array(CUdevice *dev, uint64_t bytes, omai_charge *c) {
    CUresult r = context_device(dev);
    return r != CUDA_SUCCESS ? r : omai_charge_begin(*dev, bytes, c);
}

CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *desc) {
    NEED_REAL(cuArrayCreate_v2);
    if (!pHandle || !desc) {
        return omai_cu.cuArrayCreate_v2(pHandle, desc);
    }
    CUdevice dev;
    omai_charge c;
    CUresult r = alloc_array(&dev, level_bytes(desc->Width, desc->Height, 1, desc->NumChannels, desc->Format),
                             &c);
    if (r != CUDA_SUCCESS) {
        return r;
    }
    r = omai_cu.cuArrayCreate_v2(pHandle, desc);
    return settle(r, &c, OMAI_KIND_ARRAY, r == CUDA_SUCCESS ? (uint64_t)(uintptr_t)*pHandle : 0);
}

CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *desc) {
    NEED_REAL(cuArray3DCreate_v2);
    if (!pHandle || !desc) {
        return omai_cu.cuArray3DCreate_v2(pHandle, desc);
    }
    CUdevice dev;
    omai_charge c;
    CUresult r = alloc_array(
        &dev, level_bytes(desc->Width, desc->Height, desc->Depth, desc->NumChannels, desc->Format), &c);
    if (r != CUDA_SUCCESS) {
        return r;
    }
    r = omai_cu.cuArray3DCreate_v2(pHandle, desc);
    return settle(r, &c, OMAI_KIND_ARRAY, r == CUDA_SUCCESS ? (uint64_t)(uintptr_t)*pHandle : 0);
}

CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *desc,
                                unsigned int numMipmapLevels) {
    NEED_REAL(cuMipmappedArrayCreate);
    if (!pHandle || !desc || numMipmapLevels == 0) {
        return omai_cu.cuMipmappedArrayCreate(pHandle, desc, numMipmapLevels);
    }
    /* Each level halves width, height and (unless layered) depth, down to 1. */
    bool layered = (desc->Flags & CUDA_ARRAY3D_LAYERED) != 0;
    uint64_t total = 0;
    uint64_t w = desc->Width, h = desc->Height, d = desc->Depth;
    for (unsigned l = 0; l < numMipmapLevels && l < 64; l++) {
        total = omai_sat_add(total, level_bytes(w, h, d, desc->NumChannels, desc->Format));
        w = w > 1 ? w >> 1 : w;
        h = h > 1 ? h >> 1 : h;
        d = (!layered && d > 1) ? d >> 1 : d;
    }
    CUdevice dev;
    omai_charge c;
    CUresult r = alloc_array(&dev, total, &c);
    if (r != CUDA_SUCCESS) {
        return r;
    }
    r = omai_cu.cuMipmappedArrayCreate(pHandle, desc, numMipmapLevels);
    return settle(r, &c, OMAI_KIND_MIPMAP, r == CUDA_SUCCESS ? (uint64_t)(uintptr_t)*pHandle : 0);
}

/* ----------------------------------------------------------------- frees */

CUresult cuMemFree_v2(CUdeviceptr dptr) {
    NEED_REAL(cuMemFree_v2);
    int dev = 0;
    uint64_t bytes = 0;
    bool had = dptr && omai_ptrtab_take(OMAI_KIND_DEVPTR, dptr, &dev, &bytes);
    return after_free(omai_cu.cuMemFree_v2(dptr), had, OMAI_KIND_DEVPTR, dptr, dev, bytes);
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) {
    NEED_REAL(cuMemFreeAsync);
    int dev = 0;
    uint64_t bytes = 0;
    bool had = dptr && omai_ptrtab_take(OMAI_KIND_DEVPTR, dptr, &dev, &bytes);
    return after_free(omai_cu.cuMemFreeAsync(dptr, hStream), had, OMAI_KIND_DEVPTR, dptr, dev, bytes);
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream) {
    NEED_REAL(cuMemFreeAsync_ptsz);
    int dev = 0;
    uint64_t bytes = 0;
    bool had = dptr && omai_ptrtab_take(OMAI_KIND_DEVPTR, dptr, &dev, &bytes);
    return after_free(omai_cu.cuMemFreeAsync_ptsz(dptr, hStream), had, OMAI_KIND_DEVPTR, dptr, dev, bytes);
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
    NEED_REAL(cuMemRelease);
    int dev = 0;
    uint64_t bytes = 0;
    bool had = omai_ptrtab_take(OMAI_KIND_VMM, handle, &dev, &bytes);
    return after_free(omai_cu.cuMemRelease(handle), had, OMAI_KIND_VMM, handle, dev, bytes);
}

CUresult cuArrayDestroy(CUarray hArray) {
    NEED_REAL(cuArrayDestroy);
    int dev = 0;
    uint64_t bytes = 0;
    uint64_t key = (uint64_t)(uintptr_t)hArray;
    bool had = hArray && omai_ptrtab_take(OMAI_KIND_ARRAY, key, &dev, &bytes);
    return after_free(omai_cu.cuArrayDestroy(hArray), had, OMAI_KIND_ARRAY, key, dev, bytes);
}

CUresult cuMipmappedArrayDestroy(CUmipmappedArray hMipmappedArray) {
    NEED_REAL(cuMipmappedArrayDestroy);
    int dev = 0;
    uint64_t bytes = 0;
    uint64_t key = (uint64_t)(uintptr_t)hMipmappedArray;
    bool had = hMipmappedArray && omai_ptrtab_take(OMAI_KIND_MIPMAP, key, &dev, &bytes);
    return after_free(omai_cu.cuMipmappedArrayDestroy(hMipmappedArray), had, OMAI_KIND_MIPMAP, key, dev,
                      bytes);
}

/* ----------------------------------------------------------------- views */

/* total = limit, used = the container's reserved bytes, free = limit - used
 * (saturating) but never more than the card really has free. Unlimited: the
 * card's own numbers. Not in the control file or fail-closed: 0 and 0.
 * Returns OMAI_VIEW_QUOTA, OMAI_VIEW_CARD or OMAI_VIEW_NONE accordingly. */
int omai_quota_view_of(CUdevice ord, const char *uuid, uint64_t real_free, uint64_t real_total,
                       uint64_t *free_out, uint64_t *total_out, uint64_t *used_out) {
    uint64_t limit = 0, used = 0;
    if (!omai_quota_view(ord, uuid, &limit, &used)) {
        *free_out = *total_out = *used_out = 0;
        return OMAI_VIEW_NONE;
    }
    *used_out = used;
    if (limit == OMAI_MEMORY_UNLIMITED) {
        *free_out = real_free;
        *total_out = real_total;
        return OMAI_VIEW_CARD;
    }
    uint64_t f = omai_sat_sub(limit, used);
    *free_out = f < real_free ? f : real_free;
    *total_out = limit;
    return OMAI_VIEW_QUOTA;
}

CUresult cuMemGetInfo_v2(size_t *free, size_t *total) {
    NEED_REAL(cuMemGetInfo_v2);
    CUresult r = omai_cu.cuMemGetInfo_v2(free, total);
    if (r != CUDA_SUCCESS || !free || !total) {
        return r;
    }
    CUdevice dev;
    uint64_t f = 0, t = 0, u;
    if (context_device(&dev) == CUDA_SUCCESS) {
        omai_quota_view_of(dev, NULL, *free, *total, &f, &t, &u);
    }
    *free = (size_t)f;
    *total = (size_t)t;
    return r;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    NEED_REAL(cuDeviceTotalMem_v2);
    CUresult r = omai_cu.cuDeviceTotalMem_v2(bytes, dev);
    if (r != CUDA_SUCCESS || !bytes) {
        return r;
    }
    uint64_t f, t, u;
    omai_quota_view_of(dev, NULL, *bytes, *bytes, &f, &t, &u);
    *bytes = (size_t)t;
    return r;
}
