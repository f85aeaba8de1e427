/* vk_measure.c: the copy bandwidth of the device's memory, the bound `transit bench` holds Vulkan
 * decode to (backend.h's bandwidth): copies between two device-local buffers, counted as bytes
 * read plus bytes written per second, like the CUDA backend's device-to-device copy, so that the two
 * backends' decode shares compare. Several copies go in one submission, so that the submit and
 * fence wait (tens of microseconds) are a small part of the time; best of 5 submissions. Returns 0
 * on any failure (the reason in the verbose log): a missing reference must not fail a benchmark. */
#include <time.h>

#include "error.h"
#include "vk_internal.h"

#define COPIES 8
#define PASSES 5

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double vk_bandwidth(tr_backend *b)
{
    vk_ctx *c = b->impl;
    /* 256 MiB each way, far past any cache; less on a device with small allocations */
    size_t bytes = (size_t)256 << 20;
    while (bytes > ((size_t)1 << 20) && bytes > c->lim.max_alloc)
        bytes /= 2;
    vk_buffer src = {0}, dst = {0};
    double best = 0;
    tr_status s = vk_buffer_create(c, bytes, 0, &src);
    if (s == TR_OK)
        s = vk_buffer_create(c, bytes, 0, &dst);
    for (int pass = 0; pass <= PASSES && s == TR_OK; pass++) { /* pass 0 warms up */
        s = vk_cmd_begin(c);
        if (s != TR_OK)
            break;
        for (int i = 0; i < COPIES; i++)
            vk_cmd_copy(c, &src, 0, &dst, 0, bytes);
        double t0 = now();
        s = vk_cmd_submit(c);
        double dt = now() - t0;
        if (s == TR_OK && pass > 0 && dt > 0 && 2.0 * COPIES * (double)bytes / dt > best)
            best = 2.0 * COPIES * (double)bytes / dt;
    }
    if (s != TR_OK)
        tr_log("vulkan: measuring the copy bandwidth failed: %s", tr_last_error());
    vk_buffer_destroy(c, &src);
    vk_buffer_destroy(c, &dst);
    return s == TR_OK ? best : 0;
}
