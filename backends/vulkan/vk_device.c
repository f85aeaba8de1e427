/* vk_device.c: the Vulkan instance (with the Khronos validation layer and a debug messenger when
 * asked), the choice of physical device, the limits the backend respects, the logical device and
 * its compute queue, and the one-line description `transit info` prints.
 *
 * Device choice: TRANSIT_VK_DEVICE=N picks one; otherwise discrete > integrated > virtual > CPU
 * (lavapipe), among devices with Vulkan 1.1 and a compute queue. Optional features are used when
 * the device reports them: 16-bit storage (f16/bf16 weights read as 16-bit values) and subgroup
 * arithmetic (reductions in registers); the packed and shared-memory shader variants cover devices
 * without (and the tests force them with tr_vulkan_debug). */
#include <pthread.h>
#include <stdatomic.h>
#ifdef TR_SANITIZE
#include <dlfcn.h>
#include <link.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "vk_internal.h"

/* ---- process-wide debug state -------------------------------------------------------------- */

static tr_vulkan_debug g_debug;
static atomic_long g_messages;
static atomic_int g_validation_active;
static pthread_mutex_t g_last_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_last[1024];

void tr_vulkan_set_debug(const tr_vulkan_debug *d) { g_debug = *d; }

long tr_vulkan_validation_messages(char *last, size_t cap)
{
    if (last && cap) {
        pthread_mutex_lock(&g_last_lock);
        snprintf(last, cap, "%s", g_last);
        pthread_mutex_unlock(&g_last_lock);
    }
    return atomic_load(&g_messages);
}

int tr_vulkan_validation_active(void) { return atomic_load(&g_validation_active); }

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)type;
    (void)user;
    const char *sev = severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "error" : "warning";
    const char *msg = data && data->pMessage ? data->pMessage : "(no text)";
    pthread_mutex_lock(&g_last_lock);
    snprintf(g_last, sizeof g_last, "%s: %s", sev, msg);
    pthread_mutex_unlock(&g_last_lock);
    atomic_fetch_add(&g_messages, 1);
    fprintf(stderr, "transit: vulkan validation %s: %s\n", sev, msg);
    return VK_FALSE;
}

tr_status vk_check_validation(vk_ctx *c)
{
    long n = atomic_load(&g_messages);
    if (!c->validation || n == c->validation_seen)
        return TR_OK;
    c->validation_seen = n;
    char last[1024];
    tr_vulkan_validation_messages(last, sizeof last);
    return tr_fail(TR_ERR_BACKEND, "vulkan: validation %s", last);
}

const char *vk_result_name(VkResult r)
{
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_SHADER_NV: return "VK_ERROR_INVALID_SHADER_NV";
    default: return "VkResult (unnamed)";
    }
}

/* ---- instance ------------------------------------------------------------------------------ */

static int has_layer(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkLayerProperties *props = calloc(n, sizeof *props);
    int found = 0;
    if (props && vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(props[i].layerName, name) == 0;
    free(props);
    return found;
}

static int has_instance_ext(const char *layer, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkExtensionProperties *props = calloc(n, sizeof *props);
    int found = 0;
    if (props && vkEnumerateInstanceExtensionProperties(layer, &n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(props[i].extensionName, name) == 0;
    free(props);
    return found;
}

static int env_on(const char *name)
{
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

static const VkDebugUtilsMessengerCreateInfoEXT messenger_info = {
    .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
    .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
    .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                   VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
    .pfnUserCallback = on_message,
};

static tr_status create_instance(vk_ctx *c)
{
    const char *layers[1], *exts[2];
    uint32_t n_layers = 0, n_exts = 0;
    int want_validation = c->dbg.validation || env_on("TRANSIT_VK_VALIDATION");
    const char *validation_layer = "VK_LAYER_KHRONOS_validation";
    if (want_validation) {
        if (has_layer(validation_layer) && has_instance_ext(validation_layer, VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
            layers[n_layers++] = validation_layer;
            exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
            c->validation = 1;
        } else {
            tr_log("vulkan: validation asked for, but %s is not installed (Debian: vulkan-validationlayers)",
                   validation_layer);
        }
    }
    VkInstanceCreateFlags flags = 0;
    if (has_instance_ext(NULL, "VK_KHR_portability_enumeration")) { /* MoltenVK */
        exts[n_exts++] = "VK_KHR_portability_enumeration";
        flags |= 0x00000001; /* VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR */
    }
    uint32_t api = VK_API_VERSION_1_1;
    if (vkEnumerateInstanceVersion(&api) != VK_SUCCESS || api < VK_API_VERSION_1_1)
        return tr_fail(TR_ERR_UNSUPPORTED, "no Vulkan device (the Vulkan loader is older than 1.1)");
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "transit",
        .pEngineName = "transit",
        .apiVersion = api >= VK_API_VERSION_1_2 ? VK_API_VERSION_1_2 : VK_API_VERSION_1_1,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = c->validation ? &messenger_info : NULL,
        .flags = flags,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layers,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateInstance(&ci, NULL, &c->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
        return tr_fail(TR_ERR_UNSUPPORTED, "no Vulkan device (vkCreateInstance: %s)", vk_result_name(r));
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkCreateInstance failed: %s", vk_result_name(r));
    if (c->validation) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(c->instance, "vkCreateDebugUtilsMessengerEXT");
        if (!create || create(c->instance, &messenger_info, NULL, &c->messenger) != VK_SUCCESS)
            return tr_fail(TR_ERR_BACKEND, "vulkan: cannot install the validation messenger");
    }
    c->validation_seen = atomic_load(&g_messages);
    atomic_store(&g_validation_active, c->validation);
    return TR_OK;
}

/* ---- physical device ----------------------------------------------------------------------- */

static int compute_queue_family(VkPhysicalDevice pd)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties *q = calloc(n ? n : 1, sizeof *q);
    int best = -1;
    if (q) {
        vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
        for (uint32_t i = 0; i < n; i++) {
            if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0)
                continue;
            /* prefer a compute family without graphics (an async compute queue) */
            if (best < 0 || !(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
                best = (int)i;
        }
    }
    free(q);
    return best;
}

static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

#ifdef TR_SANITIZE
static int pin_library(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (info->dlpi_name && info->dlpi_name[0])
        dlopen(info->dlpi_name, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    return 0;
}
#endif

/* Sanitizer builds only: Mesa's lavapipe sets up process-wide state once, during the first device
 * enumeration, and keeps it in its own globals; the loader unloads the driver at vkDestroyInstance,
 * and LeakSanitizer then reports that state as leaked at exit. Keeping every library loaded so far
 * mapped for the process's life keeps the state reachable, so the leak check stays about transit. */
static void keep_driver_loaded(void)
{
#ifdef TR_SANITIZE
    dl_iterate_phdr(pin_library, NULL);
#endif
}

static tr_status choose_device(vk_ctx *c)
{
    uint32_t n = 0;
    VkResult r = vkEnumeratePhysicalDevices(c->instance, &n, NULL);
    keep_driver_loaded();
    if (r != VK_SUCCESS || n == 0)
        return tr_fail(TR_ERR_UNSUPPORTED, "no Vulkan device");
    VkPhysicalDevice *pds = calloc(n, sizeof *pds);
    if (!pds)
        return tr_fail(TR_ERR_NOMEM, "vulkan: out of memory");
    vkEnumeratePhysicalDevices(c->instance, &n, pds);
    const char *want = getenv("TRANSIT_VK_DEVICE");
    int pick = -1, best_rank = -1;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(pds[i], &p);
        if (p.apiVersion < VK_API_VERSION_1_1 || compute_queue_family(pds[i]) < 0)
            continue;
        if (want && *want) {
            if (atoi(want) == (int)i)
                pick = (int)i;
            continue;
        }
        if (type_rank(p.deviceType) > best_rank) {
            best_rank = type_rank(p.deviceType);
            pick = (int)i;
        }
    }
    if (pick < 0) {
        free(pds);
        if (want && *want)
            return tr_fail(TR_ERR_UNSUPPORTED, "no Vulkan device %s with Vulkan 1.1 and compute (TRANSIT_VK_DEVICE)", want);
        return tr_fail(TR_ERR_UNSUPPORTED, "no Vulkan device (none of %u has Vulkan 1.1 and a compute queue)", n);
    }
    c->phys = pds[pick];
    free(pds);
    c->queue_family = (uint32_t)compute_queue_family(c->phys);
    return TR_OK;
}

static int has_device_ext(VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkExtensionProperties *props = calloc(n, sizeof *props);
    int found = 0;
    if (props && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(props[i].extensionName, name) == 0;
    free(props);
    return found;
}

/* Reads the properties and features the backend depends on into c->lim. */
static void read_limits(vk_ctx *c)
{
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES,
                                                 .pNext = &sub};
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    vkGetPhysicalDeviceProperties(c->phys, &c->props);
    int v12 = c->props.apiVersion >= VK_API_VERSION_1_2;
    if (v12)
        sub.pNext = &drv;
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(c->phys, &p2);
    vkGetPhysicalDeviceMemoryProperties(c->phys, &c->mem_props);

    VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
                                                .pNext = v12 ? &f16 : NULL};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s16};
    vkGetPhysicalDeviceFeatures2(c->phys, &f2);

    const VkPhysicalDeviceLimits *l = &c->props.limits;
    vk_limits *lim = &c->lim;
    lim->max_range = l->maxStorageBufferRange;
    if (c->dbg.max_range && c->dbg.max_range < lim->max_range)
        lim->max_range = c->dbg.max_range;
    lim->bind_align = l->minStorageBufferOffsetAlignment > 16 ? l->minStorageBufferOffsetAlignment : 16;
    lim->max_alloc = m3.maxMemoryAllocationSize;
    for (int i = 0; i < 3; i++)
        lim->max_groups[i] = l->maxComputeWorkGroupCount[i];
    lim->max_invocations = l->maxComputeWorkGroupInvocations;
    lim->max_wg_x = l->maxComputeWorkGroupSize[0];
    lim->max_shared = l->maxComputeSharedMemorySize;
    lim->subgroup_size = sub.subgroupSize;
    const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    lim->subgroup_arith = (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (sub.supportedOperations & need) == need &&
                          !c->dbg.no_subgroup && !env_on("TRANSIT_VK_NO_SUBGROUP");
    lim->storage16 = s16.storageBuffer16BitAccess && !c->dbg.no_16bit_storage && !env_on("TRANSIT_VK_NO_16BIT");
    lim->float16 = v12 && f16.shaderFloat16;
    if (v12 && drv.driverName[0])
        snprintf(c->driver, sizeof c->driver, "%s %s", drv.driverName, drv.driverInfo);
    else
        snprintf(c->driver, sizeof c->driver, "driver version %u", c->props.driverVersion);
}

static tr_status create_device(vk_ctx *c)
{
    float priority = 1.0f;
    VkDeviceQueueCreateInfo qi = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = c->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &priority,
    };
    VkPhysicalDevice16BitStorageFeatures s16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
        .storageBuffer16BitAccess = c->lim.storage16 ? VK_TRUE : VK_FALSE,
    };
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s16};
    const char *exts[1];
    uint32_t n_exts = 0;
    if (has_device_ext(c->phys, "VK_KHR_portability_subset")) /* must be enabled where it exists */
        exts[n_exts++] = "VK_KHR_portability_subset";
    VkDeviceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &f2,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qi,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateDevice(c->phys, &ci, NULL, &c->dev);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkCreateDevice failed on %s: %s", c->props.deviceName,
                       vk_result_name(r));
    vkGetDeviceQueue(c->dev, c->queue_family, 0, &c->queue);
    return TR_OK;
}

tr_status vk_device_open(vk_ctx *c)
{
    c->dbg = g_debug;
    TR_TRY(create_instance(c));
    TR_TRY(choose_device(c));
    read_limits(c);
    TR_TRY(create_device(c));
    return vk_check_validation(c);
}

void vk_device_close(vk_ctx *c)
{
    if (c->dev)
        vkDestroyDevice(c->dev, NULL);
    if (c->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(c->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy)
            destroy(c->instance, c->messenger, NULL);
    }
    if (c->instance)
        vkDestroyInstance(c->instance, NULL);
}

void vk_device_describe(vk_ctx *c, char *buf, size_t cap)
{
    const vk_limits *l = &c->lim;
    uint32_t v = c->props.apiVersion;
    snprintf(buf, cap,
             "vulkan: %s (%s), Vulkan %u.%u.%u; limits used: storage buffer range %llu bytes, "
             "workgroup %u invocations (x <= %u), workgroup counts %u x %u x %u, shared memory %u bytes, "
             "subgroup %u (%s), 16-bit storage %s, float16 %s%s",
             c->props.deviceName, c->driver, VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v),
             (unsigned long long)l->max_range, l->max_invocations, l->max_wg_x, l->max_groups[0], l->max_groups[1],
             l->max_groups[2], l->max_shared, l->subgroup_size,
             l->subgroup_arith ? "arithmetic used" : "shared-memory reductions", l->storage16 ? "used" : "no (packed words)",
             l->float16 ? "yes" : "no", c->validation ? "; validation layer on" : "");
}
