/* vk_pipeline.c: compute pipelines from the embedded SPIR-V, and descriptor sets.
 *
 * Every shader reads its operands from 1..4 storage buffers (set 0, bindings 0..n-1) and takes up
 * to 128 bytes of push constants, so there is one descriptor set layout and one pipeline layout per
 * binding count. A pipeline is (shader variant, specialization constants): constant 0 is the
 * workgroup size, the attention shaders add the head dimension and tile sizes. Pipelines are made
 * on first use and kept; a VkPipelineCache, seeded from the previous backend of the same device in
 * this process, saves recompiling when models are loaded one after another.
 *
 * Descriptor sets are allocated per dispatch from pools of POOL_SETS sets that are reset, not
 * freed, before each command buffer is recorded. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "vk_internal.h"

#define POOL_SETS 256

/* The pipeline cache of the last backend closed in this process, with its device's UUID. */
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static void *g_cache_data;
static size_t g_cache_size;
static uint8_t g_cache_uuid[VK_UUID_SIZE];

tr_status vk_pipelines_init(vk_ctx *c)
{
    for (int n = 1; n <= VK_MAX_BINDINGS; n++) {
        VkDescriptorSetLayoutBinding b[VK_MAX_BINDINGS];
        for (int i = 0; i < n; i++)
            b[i] = (VkDescriptorSetLayoutBinding){
                .binding = (uint32_t)i,
                .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                .descriptorCount = 1,
                .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
            };
        VkDescriptorSetLayoutCreateInfo li = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
            .bindingCount = (uint32_t)n,
            .pBindings = b,
        };
        VkResult r = vkCreateDescriptorSetLayout(c->dev, &li, NULL, &c->set_layout[n]);
        if (r != VK_SUCCESS)
            return tr_fail(TR_ERR_BACKEND, "vulkan: vkCreateDescriptorSetLayout failed: %s", vk_result_name(r));
        VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = VK_PUSH_BYTES};
        VkPipelineLayoutCreateInfo pi = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
            .setLayoutCount = 1,
            .pSetLayouts = &c->set_layout[n],
            .pushConstantRangeCount = 1,
            .pPushConstantRanges = &pr,
        };
        r = vkCreatePipelineLayout(c->dev, &pi, NULL, &c->pipe_layout[n]);
        if (r != VK_SUCCESS)
            return tr_fail(TR_ERR_BACKEND, "vulkan: vkCreatePipelineLayout failed: %s", vk_result_name(r));
    }
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    pthread_mutex_lock(&g_cache_lock);
    if (g_cache_data && memcmp(g_cache_uuid, c->props.pipelineCacheUUID, VK_UUID_SIZE) == 0) {
        ci.initialDataSize = g_cache_size;
        ci.pInitialData = g_cache_data;
    }
    VkResult r = vkCreatePipelineCache(c->dev, &ci, NULL, &c->pipe_cache);
    pthread_mutex_unlock(&g_cache_lock);
    if (r != VK_SUCCESS)
        c->pipe_cache = VK_NULL_HANDLE; /* only an optimisation */
    return TR_OK;
}

static void keep_cache(vk_ctx *c)
{
    size_t n = 0;
    if (!c->pipe_cache || vkGetPipelineCacheData(c->dev, c->pipe_cache, &n, NULL) != VK_SUCCESS || n == 0)
        return;
    void *data = malloc(n);
    if (!data)
        return;
    if (vkGetPipelineCacheData(c->dev, c->pipe_cache, &n, data) != VK_SUCCESS) {
        free(data);
        return;
    }
    pthread_mutex_lock(&g_cache_lock);
    free(g_cache_data);
    g_cache_data = data;
    g_cache_size = n;
    memcpy(g_cache_uuid, c->props.pipelineCacheUUID, VK_UUID_SIZE);
    pthread_mutex_unlock(&g_cache_lock);
}

void vk_pipelines_free(vk_ctx *c)
{
    if (!c->dev)
        return;
    for (int i = 0; i < c->n_pipes; i++) {
        vkDestroyPipeline(c->dev, c->pipes[i]->pipe, NULL);
        free(c->pipes[i]);
    }
    free(c->pipes);
    c->pipes = NULL;
    c->n_pipes = c->cap_pipes = 0;
    if (c->pipe_cache) {
        keep_cache(c);
        vkDestroyPipelineCache(c->dev, c->pipe_cache, NULL);
    }
    for (int i = 0; i < c->n_pools; i++)
        vkDestroyDescriptorPool(c->dev, c->pools[i], NULL);
    free(c->pools);
    c->pools = NULL;
    c->n_pools = 0;
    for (int n = 1; n <= VK_MAX_BINDINGS; n++) {
        if (c->pipe_layout[n])
            vkDestroyPipelineLayout(c->dev, c->pipe_layout[n], NULL);
        if (c->set_layout[n])
            vkDestroyDescriptorSetLayout(c->dev, c->set_layout[n], NULL);
    }
}

static int find_shader(const char *name)
{
    for (int i = 0; i < tr_vk_n_shaders; i++)
        if (strcmp(tr_vk_shaders[i].name, name) == 0)
            return i;
    return -1;
}

vk_pipeline *vk_pipeline_get(vk_ctx *c, const char *name, int n_bind, const uint32_t *spec, int n_spec)
{
    int shader = find_shader(name);
    if (shader < 0) {
        tr_fail(TR_ERR_UNSUPPORTED, "vulkan: no shader '%s' in this build", name);
        return NULL;
    }
    for (int i = 0; i < c->n_pipes; i++) {
        vk_pipeline *p = c->pipes[i];
        if (p->shader == shader && p->n_bind == n_bind && p->n_spec == n_spec &&
            memcmp(p->spec, spec, (size_t)n_spec * sizeof *spec) == 0)
            return p;
    }
    if (c->n_pipes == c->cap_pipes) {
        int nc = c->cap_pipes ? 2 * c->cap_pipes : 64;
        vk_pipeline **np = realloc(c->pipes, (size_t)nc * sizeof *np);
        if (!np) {
            tr_fail(TR_ERR_NOMEM, "vulkan: out of memory");
            return NULL;
        }
        c->pipes = np;
        c->cap_pipes = nc;
    }
    VkShaderModuleCreateInfo mi = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = tr_vk_shaders[shader].size,
        .pCode = tr_vk_shaders[shader].code,
    };
    VkShaderModule module;
    VkResult r = vkCreateShaderModule(c->dev, &mi, NULL, &module);
    if (r != VK_SUCCESS) {
        tr_fail(TR_ERR_BACKEND, "vulkan: vkCreateShaderModule(%s) failed: %s", name, vk_result_name(r));
        return NULL;
    }
    VkSpecializationMapEntry entries[4];
    for (int i = 0; i < n_spec; i++)
        entries[i] = (VkSpecializationMapEntry){.constantID = (uint32_t)i, .offset = (uint32_t)(i * 4), .size = 4};
    VkSpecializationInfo si = {
        .mapEntryCount = (uint32_t)n_spec,
        .pMapEntries = entries,
        .dataSize = (size_t)n_spec * 4,
        .pData = spec,
    };
    VkComputePipelineCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage =
            {
                .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = module,
                .pName = "main",
                .pSpecializationInfo = &si,
            },
        .layout = c->pipe_layout[n_bind],
    };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vk_pipeline *p = calloc(1, sizeof *p); /* kept at one address: dispatches point at it */
    r = p ? vkCreateComputePipelines(c->dev, c->pipe_cache, 1, &pi, NULL, &p->pipe) : VK_ERROR_OUT_OF_HOST_MEMORY;
    vkDestroyShaderModule(c->dev, module, NULL);
    if (r != VK_SUCCESS) {
        free(p);
        tr_fail(TR_ERR_BACKEND, "vulkan: vkCreateComputePipelines(%s) failed: %s", name, vk_result_name(r));
        return NULL;
    }
    p->shader = shader;
    p->n_bind = n_bind;
    p->n_spec = n_spec;
    memcpy(p->spec, spec, (size_t)n_spec * sizeof *spec);
    c->pipes[c->n_pipes++] = p;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tr_log("vulkan: pipeline %s (spec %u %u %u %u) in %.1f ms", name, spec[0], n_spec > 1 ? spec[1] : 0, n_spec > 2 ? spec[2] : 0,
           n_spec > 3 ? spec[3] : 0, 1e3 * (double)(t1.tv_sec - t0.tv_sec) + 1e-6 * (double)(t1.tv_nsec - t0.tv_nsec));
    return p;
}

void vk_desc_reset(vk_ctx *c)
{
    for (int i = 0; i < c->n_pools; i++)
        vkResetDescriptorPool(c->dev, c->pools[i], 0);
    c->cur_pool = 0;
    c->cur_pool_sets = 0;
}

tr_status vk_desc_alloc(vk_ctx *c, int n_bind, VkDescriptorSet *out)
{
    if (c->n_pools > 0 && c->cur_pool_sets == POOL_SETS) {
        c->cur_pool++;
        c->cur_pool_sets = 0;
    }
    if (c->cur_pool >= c->n_pools) {
        VkDescriptorPool *np = realloc(c->pools, (size_t)(c->n_pools + 1) * sizeof *np);
        if (!np)
            return tr_fail(TR_ERR_NOMEM, "vulkan: out of memory");
        c->pools = np;
        VkDescriptorPoolSize size = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = POOL_SETS * VK_MAX_BINDINGS};
        VkDescriptorPoolCreateInfo pi = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
            .maxSets = POOL_SETS,
            .poolSizeCount = 1,
            .pPoolSizes = &size,
        };
        VkResult r = vkCreateDescriptorPool(c->dev, &pi, NULL, &c->pools[c->n_pools]);
        if (r != VK_SUCCESS)
            return tr_fail(TR_ERR_BACKEND, "vulkan: vkCreateDescriptorPool failed: %s", vk_result_name(r));
        c->n_pools++;
        c->cur_pool = c->n_pools - 1;
        c->cur_pool_sets = 0;
    }
    VkDescriptorSetAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
        .descriptorPool = c->pools[c->cur_pool],
        .descriptorSetCount = 1,
        .pSetLayouts = &c->set_layout[n_bind],
    };
    VkResult r = vkAllocateDescriptorSets(c->dev, &ai, out);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkAllocateDescriptorSets failed: %s", vk_result_name(r));
    c->cur_pool_sets++;
    return TR_OK;
}
