/* cl_device.c: the OpenCL platforms and devices, the choice of one, its context and queue, the
 * limits the backend respects and the lines `transit info` prints.
 *
 * Devices are numbered across platforms in the order clGetPlatformIDs and clGetDeviceIDs give them
 * (the numbers `transit info` shows). Choice: --device N (tr_backend_options.device = N + 1), else
 * TRANSIT_OPENCL_DEVICE=N, else the first GPU, else the first device of any type. A device below
 * OpenCL 1.2, or whose work-groups cannot hold CL_WG work-items, is refused by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "cl_internal.h"

static tr_opencl_debug g_debug;

void tr_opencl_set_debug(const tr_opencl_debug *d) { g_debug = *d; }

const char *cl_error_name(cl_int e)
{
    switch (e) {
#define E(x) case x: return #x;
        E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE)
        E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
        E(CL_BUILD_PROGRAM_FAILURE) E(CL_INVALID_VALUE) E(CL_INVALID_DEVICE) E(CL_INVALID_BINARY)
        E(CL_INVALID_BUILD_OPTIONS) E(CL_INVALID_PROGRAM) E(CL_INVALID_KERNEL_NAME) E(CL_INVALID_KERNEL_ARGS)
        E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE) E(CL_INVALID_MEM_OBJECT)
        E(CL_INVALID_WORK_GROUP_SIZE) E(CL_INVALID_WORK_ITEM_SIZE) E(CL_INVALID_GLOBAL_WORK_SIZE)
        E(CL_INVALID_BUFFER_SIZE) E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_CONTEXT) E(CL_INVALID_OPERATION)
        E(CL_INVALID_PLATFORM) E(CL_INVALID_KERNEL) E(CL_INVALID_KERNEL_DEFINITION)
#undef E
    default: return "unknown OpenCL error";
    }
}

tr_status cl_check(cl_int e, const char *what)
{
    if (e == CL_SUCCESS)
        return TR_OK;
    return tr_fail(e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_HOST_MEMORY ? TR_ERR_NOMEM : TR_ERR_BACKEND,
                   "opencl: %s: %s (%d)", what, cl_error_name(e), (int)e);
}

/* ---- enumeration ---------------------------------------------------------------------------- */

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

typedef struct dev_entry {
    cl_platform_id platform;
    cl_device_id device;
} dev_entry;

/* Every device of every platform, in listing order. */
static int list_devices(dev_entry *out, int cap, cl_int *err)
{
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    *err = clGetPlatformIDs(MAX_PLATFORMS, plats, &np);
    if (*err != CL_SUCCESS)
        return 0;
    int n = 0;
    for (cl_uint p = 0; p < np && p < MAX_PLATFORMS; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd) != CL_SUCCESS)
            continue;
        for (cl_uint d = 0; d < nd && d < MAX_DEVICES && n < cap; d++)
            out[n++] = (dev_entry){plats[p], devs[d]};
    }
    return n;
}

static void dev_string(cl_device_id d, cl_device_info what, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(d, what, cap, buf, NULL) != CL_SUCCESS)
        snprintf(buf, cap, "?");
    buf[cap - 1] = '\0';
}

static int has_extension(cl_device_id d, const char *ext)
{
    size_t n = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &n) != CL_SUCCESS || n == 0)
        return 0;
    char *all = malloc(n + 1);
    if (!all)
        return 0;
    int found = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, n, all, NULL) == CL_SUCCESS) {
        all[n] = '\0';
        size_t len = strlen(ext);
        for (const char *p = strstr(all, ext); p && !found; p = strstr(p + 1, ext))
            found = (p == all || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0');
    }
    free(all);
    return found;
}

/* "OpenCL 1.2 pocl ..." -> 102; 0 if unreadable */
static int cl_version_of(const char *v)
{
    int major = 0, minor = 0;
    return sscanf(v, "OpenCL %d.%d", &major, &minor) == 2 ? major * 100 + minor : 0;
}

static void read_limits(cl_ctx *c)
{
    cl_limits *l = &c->lim;
    clGetDeviceInfo(c->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof l->max_alloc, &l->max_alloc, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof l->global_mem, &l->global_mem, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof l->local_mem, &l->local_mem, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof l->max_wg, &l->max_wg, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof l->align_bits, &l->align_bits, NULL);
    if (c->dbg.max_alloc && c->dbg.max_alloc < l->max_alloc)
        l->max_alloc = c->dbg.max_alloc;
    l->subgroups = has_extension(c->device, "cl_khr_subgroups") || has_extension(c->device, "cl_intel_subgroups");
    l->fp16 = has_extension(c->device, "cl_khr_fp16");
    l->fp64 = has_extension(c->device, "cl_khr_fp64");
}

/* The device to use: an explicit index, else the first GPU, else device 0. */
static tr_status choose(const dev_entry *devs, int n, int want, int *pick)
{
    if (want >= 0) {
        if (want >= n)
            return tr_fail(TR_ERR_INVALID_ARG, "opencl: device %d requested, but there %s %d device%s (transit info "
                                               "lists them)",
                           want, n == 1 ? "is" : "are", n, n == 1 ? "" : "s");
        *pick = want;
        return TR_OK;
    }
    *pick = 0;
    for (int i = 0; i < n; i++) {
        cl_device_type t = 0;
        clGetDeviceInfo(devs[i].device, CL_DEVICE_TYPE, sizeof t, &t, NULL);
        if (t & CL_DEVICE_TYPE_GPU) {
            *pick = i;
            break;
        }
    }
    return TR_OK;
}

tr_status cl_device_open(cl_ctx *c, int want_device)
{
    c->dbg = g_debug;
    dev_entry devs[MAX_DEVICES];
    cl_int err;
    int n = list_devices(devs, MAX_DEVICES, &err);
    if (n == 0)
        return tr_fail(TR_ERR_UNSUPPORTED, "opencl: no OpenCL device (%s; an ICD such as pocl-opencl-icd or a GPU "
                                           "driver's is needed)",
                       err != CL_SUCCESS ? cl_error_name(err) : "no platform lists a device");
    const char *env = getenv("TRANSIT_OPENCL_DEVICE");
    int want = want_device > 0 ? want_device - 1 : env && *env ? atoi(env) : -1;
    int pick;
    TR_TRY(choose(devs, n, want, &pick));
    c->platform = devs[pick].platform;
    c->device = devs[pick].device;
    c->device_index = pick;
    dev_string(c->device, CL_DEVICE_NAME, c->device_name, sizeof c->device_name);
    dev_string(c->device, CL_DRIVER_VERSION, c->driver, sizeof c->driver);
    dev_string(c->device, CL_DEVICE_VERSION, c->version, sizeof c->version);
    if (clGetPlatformInfo(c->platform, CL_PLATFORM_NAME, sizeof c->platform_name, c->platform_name, NULL) != CL_SUCCESS)
        snprintf(c->platform_name, sizeof c->platform_name, "?");
    if (cl_version_of(c->version) < 102)
        return tr_fail(TR_ERR_UNSUPPORTED, "opencl: device %d (%s) reports '%s'; transit needs OpenCL 1.2", pick,
                       c->device_name, c->version);
    read_limits(c);
    if (c->lim.max_wg < CL_WG)
        return tr_fail(TR_ERR_UNSUPPORTED, "opencl: device %d (%s) allows work-groups of %zu work-items; transit's "
                                           "kernels need %d",
                       pick, c->device_name, c->lim.max_wg, CL_WG);
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)c->platform, 0};
    c->ctx = clCreateContext(props, 1, &c->device, NULL, NULL, &err);
    TR_TRY(cl_check(err, "clCreateContext"));
    c->queue = clCreateCommandQueue(c->ctx, c->device, 0, &err);
    return cl_check(err, "clCreateCommandQueue");
}

void cl_device_close(cl_ctx *c)
{
    if (c->queue)
        clReleaseCommandQueue(c->queue);
    if (c->ctx)
        clReleaseContext(c->ctx);
}

static const char *type_name(cl_device_id d)
{
    cl_device_type t = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    return t & CL_DEVICE_TYPE_GPU ? "GPU" : t & CL_DEVICE_TYPE_CPU ? "CPU" : t & CL_DEVICE_TYPE_ACCELERATOR ? "accelerator"
                                                                                                            : "other";
}

/* The device in use with its limits, then every device with its number (the --device N). */
void cl_device_describe(cl_ctx *c, char *buf, size_t cap)
{
    const cl_limits *l = &c->lim;
    size_t used = (size_t)snprintf(
        buf, cap,
        "opencl: device %d: %s (%s, %s, driver %s); limits used: largest buffer %llu bytes, global memory %llu "
        "bytes, local memory %llu bytes, work-group %zu work-items (kernels use %d), subgroups %s, fp16 %s, fp64 %s%s",
        c->device_index, c->device_name, c->platform_name, c->version, c->driver, (unsigned long long)l->max_alloc,
        (unsigned long long)l->global_mem, (unsigned long long)l->local_mem, l->max_wg, CL_WG,
        l->subgroups ? "available, not used yet (local-memory reductions)" : "no (local-memory reductions)", l->fp16 ? "yes (not used)" : "no",
        l->fp64 ? "yes (not used)" : "no", c->dbg.guard_nodes ? "; guard mode" : "");
    dev_entry devs[MAX_DEVICES];
    cl_int err;
    int n = list_devices(devs, MAX_DEVICES, &err);
    for (int i = 0; i < n && used < cap; i++) {
        char name[256], plat[256] = "?", ver[128];
        dev_string(devs[i].device, CL_DEVICE_NAME, name, sizeof name);
        dev_string(devs[i].device, CL_DEVICE_VERSION, ver, sizeof ver);
        clGetPlatformInfo(devs[i].platform, CL_PLATFORM_NAME, sizeof plat, plat, NULL);
        plat[sizeof plat - 1] = '\0';
        used += (size_t)snprintf(buf + used, cap - used, "\n  opencl device %d%s: %s, %s (%s, %s)", i,
                                 i == c->device_index ? " (in use)" : "", name, type_name(devs[i].device), plat, ver);
    }
}
