/*
 * shim_nvml.c - NVML's memory views show the container's quota, the same
 * numbers cuMemGetInfo shows (nvidia-smi inside the container included).
 */
#include "shim.h"

/* Quota view of an NVML device, matched to the control file by its UUID. */
static int nvml_view(nvmlDevice_t device, uint64_t real_free, uint64_t real_total, uint64_t *f, uint64_t *t,
                     uint64_t *u) {
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
    if (!omai_nv.nvmlDeviceGetUUID || omai_nv.nvmlDeviceGetUUID(device, uuid, sizeof uuid) != NVML_SUCCESS) {
        *f = *t = *u = 0; /* cannot tell which GPU: fail-closed view */
        return OMAI_VIEW_NONE;
    }
    return omai_quota_view_of(0, uuid, real_free, real_total, f, t, u);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    if (!omai_nvml_ready() || !omai_nv.nvmlDeviceGetMemoryInfo) {
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    }
    nvmlReturn_t r = omai_nv.nvmlDeviceGetMemoryInfo(device, memory);
    if (r != NVML_SUCCESS || !memory) {
        return r;
    }
    uint64_t f, t, u;
    if (nvml_view(device, memory->free, memory->total, &f, &t, &u) == OMAI_VIEW_CARD) {
        return r; /* unlimited: the card's own numbers */
    }
    memory->total = t;
    memory->free = f;
    memory->used = u;
    return r;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    if (!omai_nvml_ready() || !omai_nv.nvmlDeviceGetMemoryInfo_v2) {
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    }
    nvmlReturn_t r = omai_nv.nvmlDeviceGetMemoryInfo_v2(device, memory);
    if (r != NVML_SUCCESS || !memory) {
        return r;
    }
    uint64_t f, t, u;
    if (nvml_view(device, memory->free, memory->total, &f, &t, &u) == OMAI_VIEW_CARD) {
        return r;
    }
    memory->total = t;
    memory->free = f;
    memory->used = u;
    memory->reserved = 0; /* the driver's reservation is not the container's */
    return r;
}
