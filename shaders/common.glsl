/* common.glsl: included first by every shader. Extensions chosen by the variant's defines, the
 * 1-D workgroup whose size WG is specialization constant 0, and the linear workgroup index.
 *
 * Variants (set by backends/vulkan/CMakeLists.txt):
 *   W_F32, W_F16, W_BF16  weight dtype of weight-typed shaders (see weights.glsl)
 *   PACKED                16-bit weights read as 32-bit words: no 16-bit storage needed
 *   USE_SUBGROUP          reductions with subgroup arithmetic (reduce.glsl)
 *
 * The host dispatches a linear count of workgroups as a 2-D grid (x ≤ maxComputeWorkGroupCount[0]),
 * so group_index() may run past the count in the last row of the grid: shaders check it. */
#if (defined(W_F16) || defined(W_BF16)) && !defined(PACKED)
#extension GL_EXT_shader_16bit_storage : require
#endif
#extension GL_EXT_control_flow_attributes : require
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;

uint group_index() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
