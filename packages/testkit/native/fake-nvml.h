/*
 * fake-nvml.h: what the two halves of the fake NVML library share: the nvml.h
 * types and layouts, the configured GPUs and the library's counters.
 * Everything here is hidden from the dynamic symbol table; only the NVML
 * entry points (EXPORT) are visible to dlsym.
 */
#ifndef KITT_FAKE_NVML_H
#define KITT_FAKE_NVML_H

#define EXPORT __attribute__((visibility("default")))
#define HIDDEN __attribute__((visibility("hidden")))

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
HIDDEN extern struct fake_gpu gpus[MAX_GPUS];
HIDDEN extern unsigned int gpu_count;
HIDDEN extern char driver_version[MAX_TEXT];
HIDDEN extern int cuda_version;
HIDDEN extern int init_error;
HIDDEN extern long forget_init_after;

/* Library state and counters (the counters file is rewritten at every init and shutdown). */
HIDDEN extern int refcount;
HIDDEN extern unsigned long init_calls, shutdown_calls, device_calls;

/* Reads the config (see fake-nvml.c); 0, or -1 after saying why on stderr. */
HIDDEN int load_config(void);
HIDDEN void write_counters(void);

#endif
