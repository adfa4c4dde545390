/*
 * fake-nvml.c: a stand-in for libnvidia-ml.so.1 used by the @kitt/nvml tests.
 *
 * It exports the NVML entry points the binding uses, with the real signatures
 * and struct layouts (nvml.h), so the binding's koffi declarations are
 * exercised exactly as against the driver. Its GPUs and error codes come from
 * a line-based config file (written by @kitt/testkit/nvml), read whenever the
 * init reference count goes from 0 to 1:
 *
 *   1. "fake-nvml.conf" next to this shared object (each fakeNvmlEnv() call
 *      copies the library into its own directory, so a library path is bound
 *      to one config and copies keep separate state inside one process),
 *   2. else the file named by the environment variable FAKE_NVML_CONFIG,
 *   3. else no GPU at all.
 *
 * Any function can be left out at compile time with -DFAKE_NVML_OMIT_<name>,
 * to play an older driver that lacks the symbol.
 *
 * This file holds the NVML entry points; fake-nvml-config.c reads the config.
 * Build (what buildFakeNvml runs):
 *   gcc -shared -fPIC -O2 -fvisibility=hidden -o libnvidia-ml.so.1 fake-nvml.c fake-nvml-config.c -ldl
 */
#include <stdio.h>
#include <string.h>

#include "fake-nvml.h"

/* Survive config re-reads: "lost once" fires once per process and slot. */
static int lost_once_fired[MAX_GPUS];
static int lost_now[MAX_GPUS];
static int forgot_init;

/* Every device query goes through here: init state, handle check, lost GPUs. */
static nvmlReturn_t enter_device(void *device, struct fake_gpu **out)
{
    if (refcount <= 0)
        return NVML_ERROR_UNINITIALIZED;
    struct fake_gpu *g = device;
    if (!g || g < gpus || g >= gpus + gpu_count)
        return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int i = (unsigned int)(g - gpus);
    device_calls++;
    if (forget_init_after >= 0 && !forgot_init && (long)device_calls > forget_init_after) {
        /* Plays another NVML user in the process shutting the library down under us. */
        forgot_init = 1;
        refcount = 0;
        write_counters();
        return NVML_ERROR_UNINITIALIZED;
    }
    if (g->lost == LOST_ALWAYS)
        return NVML_ERROR_GPU_IS_LOST;
    if (g->lost == LOST_ONCE && !lost_once_fired[i]) {
        lost_once_fired[i] = 1;
        lost_now[i] = 1;
    }
    if (lost_now[i])
        return NVML_ERROR_GPU_IS_LOST;
    *out = g;
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_out(char *dst, unsigned int length, const char *src)
{
    if (!dst)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, strlen(src) + 1);
    return NVML_SUCCESS;
}

/* Extra symbols, for tests that load the fake directly. */
EXPORT unsigned long fakeNvmlInitCalls(void) { return init_calls; }
EXPORT unsigned long fakeNvmlShutdownCalls(void) { return shutdown_calls; }
EXPORT unsigned long fakeNvmlDeviceCalls(void) { return device_calls; }

#ifndef FAKE_NVML_OMIT_nvmlInit_v2
EXPORT nvmlReturn_t nvmlInit_v2(void)
{
    init_calls++;
    if (refcount == 0) {
        if (load_config()) {
            write_counters();
            return NVML_ERROR_UNKNOWN;
        }
        if (init_error) {
            write_counters();
            return init_error;
        }
        /* A lost GPU comes back when the library is brought up again. */
        memset(lost_now, 0, sizeof(lost_now));
    }
    refcount++;
    write_counters();
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlShutdown
EXPORT nvmlReturn_t nvmlShutdown(void)
{
    shutdown_calls++;
    if (refcount <= 0) {
        write_counters();
        return NVML_ERROR_UNINITIALIZED;
    }
    refcount--;
    write_counters();
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlErrorString
EXPORT const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 5: return "Already Initialized";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 8: return "Insufficient External Power";
    case 9: return "Driver Not Loaded";
    case 10: return "Timeout";
    case 11: return "Interrupt Request Issue";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 14: return "Corrupted infoROM";
    case 15: return "GPU is lost";
    case 16: return "GPU requires restart";
    case 17: return "The operating system has blocked the request.";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    case 19: return "In use by another client";
    case 20: return "Insufficient Memory";
    case 21: return "No data";
    default: return "Unknown Error";
    }
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlSystemGetDriverVersion
EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    if (refcount <= 0)
        return NVML_ERROR_UNINITIALIZED;
    return copy_out(version, length, driver_version);
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlSystemGetCudaDriverVersion
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version)
{
    /* Like the driver, this one answers without init. */
    if (!version)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (cuda_version <= 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *version = cuda_version;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetCount_v2
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    if (refcount <= 0)
        return NVML_ERROR_UNINITIALIZED;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = gpu_count;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetHandleByIndex_v2
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **device)
{
    if (refcount <= 0)
        return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= gpu_count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &gpus[index];
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetName
EXPORT nvmlReturn_t nvmlDeviceGetName(void *device, char *name, unsigned int length)
{
    struct fake_gpu *g;
    nvmlReturn_t r = enter_device(device, &g);
    return r ? r : copy_out(name, length, g->name);
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetUUID
EXPORT nvmlReturn_t nvmlDeviceGetUUID(void *device, char *uuid, unsigned int length)
{
    struct fake_gpu *g;
    nvmlReturn_t r = enter_device(device, &g);
    return r ? r : copy_out(uuid, length, g->uuid);
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetPciInfo_v3
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(void *device, nvmlPciInfo_t *pci)
{
    struct fake_gpu *g;
    nvmlReturn_t r = enter_device(device, &g);
    if (r)
        return r;
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    memset(pci, 0, sizeof(*pci));
    snprintf(pci->busId, sizeof(pci->busId), "%.31s", g->pci);
    unsigned int domain = 0, bus = 0, dev = 0, fn = 0;
    if (sscanf(g->pci, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) == 4) {
        pci->domain = domain;
        pci->bus = bus;
        pci->device = dev;
        snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04x:%02X:%02X.%x", domain & 0xffff, bus, dev, fn);
    }
    pci->pciDeviceId = 0x233010de; /* H100 SXM device id, NVIDIA vendor id */
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetMemoryInfo
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(void *device, nvmlMemory_t *memory)
{
    struct fake_gpu *g;
    nvmlReturn_t r = enter_device(device, &g);
    if (r)
        return r;
    if (!g->has_memory)
        return NVML_ERROR_NOT_SUPPORTED;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = g->memory_total;
    memory->used = g->memory_used;
    memory->free = g->memory_total - g->memory_used;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetUtilizationRates
EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(void *device, nvmlUtilization_t *util)
{
    struct fake_gpu *g;
    nvmlReturn_t r = enter_device(device, &g);
    if (r)
        return r;
    if (!g->has_util)
        return NVML_ERROR_NOT_SUPPORTED;
    if (!util)
        return NVML_ERROR_INVALID_ARGUMENT;
    util->gpu = g->util_gpu;
    util->memory = g->util_memory;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetCudaComputeCapability
EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(void *device, int *major, int *minor)
{
    struct fake_gpu *g;
    nvmlReturn_t r = enter_device(device, &g);
    if (r)
        return r;
    if (!g->has_cc)
        return NVML_ERROR_NOT_SUPPORTED;
    if (!major || !minor)
        return NVML_ERROR_INVALID_ARGUMENT;
    *major = g->cc_major;
    *minor = g->cc_minor;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetTemperature
EXPORT nvmlReturn_t nvmlDeviceGetTemperature(void *device, int sensor, unsigned int *temp)
{
    struct fake_gpu *g;
    nvmlReturn_t r = enter_device(device, &g);
    if (r)
        return r;
    if (sensor != 0 || !temp)
        return NVML_ERROR_INVALID_ARGUMENT; /* only NVML_TEMPERATURE_GPU exists */
    if (!g->has_temperature)
        return NVML_ERROR_NOT_SUPPORTED;
    *temp = g->temperature;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetPowerUsage
EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(void *device, unsigned int *power)
{
    struct fake_gpu *g;
    nvmlReturn_t r = enter_device(device, &g);
    if (r)
        return r;
    if (!g->has_power)
        return NVML_ERROR_NOT_SUPPORTED;
    if (!power)
        return NVML_ERROR_INVALID_ARGUMENT;
    *power = g->power_mw;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_NVML_OMIT_nvmlDeviceGetPciInfo_v2
/* The pre-r410 layout: char busId[16] then the same integers, then reserved words (52 bytes). */
typedef struct {
    char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    unsigned int reserved[4];
} nvmlPciInfo_v2_t;

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v2(void *device, nvmlPciInfo_v2_t *pci)
{
    struct fake_gpu *g;
    nvmlReturn_t r = enter_device(device, &g);
    if (r)
        return r;
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    memset(pci, 0, sizeof(*pci));
    unsigned int domain = 0, bus = 0, dev = 0, fn = 0;
    if (sscanf(g->pci, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) == 4) {
        pci->domain = domain;
        pci->bus = bus;
        pci->device = dev;
        snprintf(pci->busId, sizeof(pci->busId), "%04x:%02X:%02X.%x", domain & 0xffff, bus & 0xff, dev & 0xff, fn & 7);
    }
    pci->pciDeviceId = 0x233010de;
    return NVML_SUCCESS;
}
#endif
