/*
 * fake-nvml-config.c: the fake NVML library's configuration: the line format
 * written by @kitt/testkit/nvml (serializeFakeNvmlConfig), where the file is
 * found, and the counters file tests read back.
 *
 * One "key value" per line; "#" starts a comment; an unknown key or bad value
 * makes nvmlInit_v2 fail with NVML_ERROR_UNKNOWN (and a line on stderr), so a
 * typo cannot pass silently. Global keys:
 *   driver 570.86.15          cuda 12080 (0: NOT_SUPPORTED)
 *   init_error 9              forget_init_after 3 (device queries, once)
 *   counters /path/to/file
 * "gpu" starts a device; its keys ("none" makes the query NOT_SUPPORTED):
 *   name NVIDIA H100 80GB HBM3     uuid GPU-...       pci 00000000:1B:00.0
 *   memory <total> <used> | none   util <gpu> <memory> | none
 *   cc <major> <minor> | none      temperature <C> | none
 *   power <mW> | none              lost no | always | once
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-nvml.h"

struct fake_gpu gpus[MAX_GPUS];
unsigned int gpu_count;
char driver_version[MAX_TEXT];
int cuda_version;
int init_error;
long forget_init_after = -1;
static char counters_path[4096];

int refcount;
unsigned long init_calls, shutdown_calls, device_calls;

void write_counters(void)
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
int load_config(void)
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
