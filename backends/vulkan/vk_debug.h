/* vk_debug.h: switches for testing the Vulkan backend (tests/test_vulkan.c) and for chasing driver
 * problems. Defined only when the backend is built (TR_HAVE_VULKAN_DEBUG is then set for every
 * target that links transit_lib).
 *
 * Environment variables, read when a backend is created, do the same for the command line:
 *   TRANSIT_VK_VALIDATION=1   enable VK_LAYER_KHRONOS_validation; any message it reports makes the
 *                             next backend call fail with that message
 *   TRANSIT_VK_DEVICE=N       use physical device N (in vkEnumeratePhysicalDevices order)
 *   TRANSIT_VK_NO_16BIT=1, TRANSIT_VK_NO_SUBGROUP=1   take the paths for devices without them
 *   TRANSIT_FAULT=<op>        add 1 to the first element of that op's output (core/parity.h) */
#ifndef TR_VK_DEBUG_H
#define TR_VK_DEBUG_H

#include <stddef.h>

typedef struct tr_vulkan_debug {
    int validation;       /* as TRANSIT_VK_VALIDATION=1 */
    int guard_nodes;      /* every node gets its own memory with guard bytes on both sides, filled
                           * with a pattern before and checked after each graph (no reuse) */
    size_t max_range;     /* pretend maxStorageBufferRange is this many bytes (0: the device's),
                           * to exercise the split of large operands into sub-range pieces */
    int no_16bit_storage; /* as TRANSIT_VK_NO_16BIT=1 */
    int no_subgroup;      /* as TRANSIT_VK_NO_SUBGROUP=1 */
} tr_vulkan_debug;

/* Applies to backends created afterwards (process-wide). */
void tr_vulkan_set_debug(const tr_vulkan_debug *d);

/* Validation messages received so far by any backend of this process; the newest in last. */
long tr_vulkan_validation_messages(char *last, size_t cap);

/* Whether the most recently created backend runs with the validation layer. */
int tr_vulkan_validation_active(void);

#endif
