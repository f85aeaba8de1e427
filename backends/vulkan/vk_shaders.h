/* vk_shaders.h: the SPIR-V of every shader variant, embedded at build time (embed_spirv.cmake writes
 * vk_shaders_embedded.c from the glslc output of shaders/ (*.comp)). */
#ifndef TR_VK_SHADERS_H
#define TR_VK_SHADERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_vk_shader_code {
    const char *name; /* <op>_<dtype>[_<variant>], as in backends/vulkan/CMakeLists.txt */
    const uint32_t *code;
    size_t size; /* bytes */
} tr_vk_shader_code;

extern const tr_vk_shader_code tr_vk_shaders[];
extern const int tr_vk_n_shaders;

#endif
