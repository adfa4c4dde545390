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
 * Build: gcc -shared -fPIC -O2 -o libnvidia-ml.so.1 fake-nvml.c
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_UNKNOWN 999

/* Layouts copied from nvml.h. */
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE 16

typedef struct nvmlPciInfo_st {
    char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
} nvmlPciInfo_t;

typedef struct nvmlMemory_st {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct nvmlUtilization_st {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

_Static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t layout");
_Static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t layout");

#define MAX_GPUS 64
#define MAX_TEXT 128

enum lost_mode { LOST_NO = 0, LOST_ALWAYS, LOST_ONCE };

struct fake_gpu {
    char name[MAX_TEXT];
    char uuid[MAX_TEXT];
    char pci[MAX_TEXT];
    int has_memory;
    unsigned long long memory_total, memory_used;
    int has_util;
    unsigned int util_gpu, util_memory;
    int has_cc;
    int cc_major, cc_minor;
    int has_temperature;
    unsigned int temperature;
    int has_power;
    unsigned int power_mw;
    enum lost_mode lost;
};

/* nvmlDevice_t points at one of these slots; they outlive re-init. */
static struct fake_gpu gpus[MAX_GPUS];
static unsigned int gpu_count;
static char driver_version[MAX_TEXT];
static int cuda_version;
static int init_error;
static long forget_init_after = -1;
static char counters_path[4096];

static int refcount;
static unsigned long init_calls, shutdown_calls, device_calls;
/* Survive config re-reads: "lost once" fires once per process and slot. */
static int lost_once_fired[MAX_GPUS];
static int lost_now[MAX_GPUS];
static int forgot_init;

static void write_counters(void)
{
    if (!counters_path[0])
        return;
    FILE *f = fopen(counters_path, "w");
    if (!f)
        return;
    fprintf(f, "init %lu\nshutdown %lu\nrefcount %d\n", init_calls, shutdown_calls, refcount);
    fclose(f);
}

static void copy_text(char *dst, const char *src)
{
    snprintf(dst, MAX_TEXT, "%s", src);
}

static int parse_ull(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int parse_uint(const char *s, unsigned int *out)
{
    unsigned long long v;
    if (parse_ull(s, &v) || v > 0xffffffffULL)
        return -1;
    *out = (unsigned int)v;
    return 0;
}

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -2147483647L || v > 2147483647L)
        return -1;
    *out = (int)v;
    return 0;
}

static void reset_config(void)
{
    memset(gpus, 0, sizeof(gpus));
    gpu_count = 0;
    copy_text(driver_version, "570.86.15");
    cuda_version = 12080;
    init_error = 0;
    forget_init_after = -1;
    counters_path[0] = 0;
}

/* One "key value" line; returns 0 when understood. */
static int apply_line(char *key, char *value)
{
    struct fake_gpu *g = gpu_count ? &gpus[gpu_count - 1] : NULL;
    int none = strcmp(value, "none") == 0;

    if (!strcmp(key, "gpu")) {
        if (gpu_count == MAX_GPUS)
            return -1;
        gpu_count++;
        return 0;
    }
    if (!strcmp(key, "driver")) {
        copy_text(driver_version, value);
        return 0;
    }
    if (!strcmp(key, "cuda"))
        return parse_int(value, &cuda_version);
    if (!strcmp(key, "init_error"))
        return parse_int(value, &init_error);
    if (!strcmp(key, "forget_init_after")) {
        unsigned long long v;
        if (parse_ull(value, &v))
            return -1;
        forget_init_after = (long)v;
        return 0;
    }
    if (!strcmp(key, "counters")) {
        snprintf(counters_path, sizeof(counters_path), "%s", value);
        return 0;
    }
    if (!g)
        return -1; /* device keys need a preceding "gpu" line */
    if (!strcmp(key, "name")) {
        copy_text(g->name, value);
        return 0;
    }
    if (!strcmp(key, "uuid")) {
        copy_text(g->uuid, value);
        return 0;
    }
    if (!strcmp(key, "pci")) {
        copy_text(g->pci, value);
        return 0;
    }
    if (!strcmp(key, "memory")) {
        if (none) {
            g->has_memory = 0;
            return 0;
        }
        char *used = strchr(value, ' ');
        if (!used)
            return -1;
        *used++ = 0;
        g->has_memory = 1;
        if (parse_ull(value, &g->memory_total) || parse_ull(used, &g->memory_used) ||
            g->memory_used > g->memory_total)
            return -1;
        return 0;
    }
    if (!strcmp(key, "util")) {
        if (none) {
            g->has_util = 0;
            return 0;
        }
        char *mem = strchr(value, ' ');
        if (!mem)
            return -1;
        *mem++ = 0;
        g->has_util = 1;
        return parse_uint(value, &g->util_gpu) || parse_uint(mem, &g->util_memory);
    }
    if (!strcmp(key, "cc")) {
        if (none) {
            g->has_cc = 0;
            return 0;
        }
        char *minor = strchr(value, ' ');
        if (!minor)
            return -1;
        *minor++ = 0;
        g->has_cc = 1;
        return parse_int(value, &g->cc_major) || parse_int(minor, &g->cc_minor);
    }
    if (!strcmp(key, "temperature")) {
        g->has_temperature = !none;
        return none ? 0 : parse_uint(value, &g->temperature);
    }
    if (!strcmp(key, "power")) {
        g->has_power = !none;
        return none ? 0 : parse_uint(value, &g->power_mw);
    }
    if (!strcmp(key, "lost")) {
        if (!strcmp(value, "no"))
            g->lost = LOST_NO;
        else if (!strcmp(value, "always"))
            g->lost = LOST_ALWAYS;
        else if (!strcmp(value, "once"))
            g->lost = LOST_ONCE;
        else
            return -1;
        return 0;
    }
    return -1;
}

static int config_path(char *out, size_t size)
{
    Dl_info info;
    if (dladdr((void *)&config_path, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash) {
            snprintf(out, size, "%.*s/fake-nvml.conf", (int)(slash - info.dli_fname), info.dli_fname);
            FILE *probe = fopen(out, "r");
            if (probe) {
                fclose(probe);
                return 1;
            }
        }
    }
    const char *env = getenv("FAKE_NVML_CONFIG");
    if (env && env[0]) {
        snprintf(out, size, "%s", env);
        return 1;
    }
    return 0;
}

/* Returns 0, or -1 after telling stderr why (a test author's typo must not pass silently). */
static int load_config(void)
{
    char path[4096];
    char line[1024];
    int lineno = 0;

    reset_config();
    if (!config_path(path, sizeof(path)))
        return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "fake-nvml: cannot read config %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (!n || line[0] == '#')
            continue;
        char *value = strchr(line, ' ');
        if (value)
            *value++ = 0;
        else
            value = line + n;
        if (apply_line(line, value)) {
            fprintf(stderr, "fake-nvml: %s:%d: bad line \"%s %s\"\n", path, lineno, line, value);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

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
